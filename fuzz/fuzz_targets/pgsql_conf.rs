//! pgsql_table(5) configuration files, query / result_format templates,
//! and the SQL users file
//! on arbitrary text: a clear error or a statement, never a panic; and a
//! compiled query never carries key text in its SQL (keys are parameters).
#![no_main]
use libfuzzer_sys::fuzz_target;
use yubin_pgsql::template::Dialect;
use yubin_pgsql::users::SqlUsers;
use yubin_pgsql::{PgsqlConfig, Query, ResultFormat};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = PgsqlConfig::parse(&text, &|_| Err("no files".into()));
    // The first line is a key, the rest a template.
    let (key, template) = text.split_once('\n').unwrap_or(("user@mail.example.com", &text));
    if let Ok(q) = Query::compile(template) {
        if let Some(values) = q.bind(key) {
            assert_eq!(values.len(), q.params().len());
            let _ = q.render(&values);
        }
    }
    if let Ok(q) = Query::compile_in(Dialect::Dovecot, template) {
        if let Some(values) = q.bind_with(key, "{PLAIN}pw") {
            assert_eq!(values.len(), q.params().len());
        }
    }
    // The users file (Dovecot's dovecot-sql.conf.ext names); parsing does
    // not connect.
    let _ = SqlUsers::parse(&text, "fuzz");
    if let Ok(f) = ResultFormat::parse(template) {
        let _ = f.apply(key, "user@example.com");
    }
});
