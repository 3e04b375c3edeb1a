//! The `query` and `result_format` templates of pgsql_table(5) with their
//! `%` expansions (Postfix's db_common.c), compiled so that no part of a
//! lookup key is ever pasted into SQL text.
//!
//! Postfix pastes the key into the query after PQescapeStringConn(3). yubin
//! instead sends every expansion as a bind parameter of a prepared
//! statement: a placeholder that stands alone (`'%s'`, or a bare `%s`) becomes
//! `$n`; one inside a longer string literal (`'%u@example.com'`) becomes a
//! concatenation, `(CAST($n AS text) || '@example.com')`. Parameters are sent
//! in text format, so the server converts them to the column's type exactly as
//! it would convert the quoted literal Postfix writes. Placeholders where a
//! parameter cannot stand (inside a quoted identifier, an `E'...'` or
//! dollar-quoted string, or a comment) are refused when the file is read.

use crate::PgError;

/// Longest template accepted (a query longer than this is a mistake).
const MAX_TEMPLATE: usize = 64 * 1024;

/// What a `%` sequence stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ph {
    /// `%s`: the whole key.
    Key,
    /// `%u`: the local part of `user@domain`, else the whole key.
    Local,
    /// `%d`: the domain of `user@domain`.
    Domain,
    /// `%1`..`%9`: the n-th label of the domain from the right.
    Label(u8),
    /// Dovecot-style `%w`: the second input of `bind_with` (a password hash
    /// that `yubin passwd` stores).
    Secret,
}

/// Which `%` letters a template speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// pgsql_table(5): `%s %u %d %1..%9 %S %U %D`.
    Postfix,
    /// Dovecot's SQL driver: `%u` the whole user name, `%n` its local part,
    /// `%d` its domain, `%w` the (hashed) password.
    Dovecot,
}

impl Ph {
    fn letter(self) -> String {
        match self {
            Ph::Key => "%s".into(),
            Ph::Local => "%u".into(),
            Ph::Domain => "%d".into(),
            Ph::Label(n) => format!("%{n}"),
            Ph::Secret => "%w".into(),
        }
    }

    /// The value for `key`, or `None` when Postfix suppresses the query
    /// (pgsql_table(5): an empty local part for %u; no domain for %d; too
    /// few domain labels for %1..%9).
    pub fn value<'a>(self, key: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        use std::borrow::Cow;
        let split = key.rsplit_once('@');
        match self {
            Ph::Key => Some(Cow::Borrowed(key)),
            Ph::Local => match split {
                Some(("", _)) => None,
                Some((l, _)) => Some(Cow::Borrowed(l)),
                None if key.is_empty() => None,
                None => Some(Cow::Borrowed(key)),
            },
            Ph::Domain => match split {
                Some((_, d)) if !d.is_empty() => Some(Cow::Borrowed(d)),
                _ => None,
            },
            Ph::Secret => None,
            Ph::Label(n) => {
                let (_, d) = split?;
                if d.is_empty() {
                    return None;
                }
                let label = d.rsplit('.').nth(usize::from(n) - 1)?;
                (!label.is_empty()).then(|| Cow::Owned(label.to_lowercase()))
            }
        }
    }
}

/// Reads the sequence after a `%` at `rest`: `Ok(None)` for `%%`.
fn percent(rest: &mut std::str::Chars<'_>, what: &str, text: &str) -> Result<Option<Ph>, PgError> {
    percent_in(Dialect::Postfix, rest, what, text)
}

fn percent_in(
    dialect: Dialect,
    rest: &mut std::str::Chars<'_>,
    what: &str,
    text: &str,
) -> Result<Option<Ph>, PgError> {
    if dialect == Dialect::Dovecot {
        return match rest.next() {
            Some('%') => Ok(None),
            Some('u') => Ok(Some(Ph::Key)),
            Some('n') => Ok(Some(Ph::Local)),
            Some('d') => Ok(Some(Ph::Domain)),
            Some('w') => Ok(Some(Ph::Secret)),
            c => Err(PgError::Config(format!(
                "{what}: invalid template \"{text}\": %{} is not one of %% %u %n %d %w",
                c.map(String::from).unwrap_or_default()
            ))),
        };
    }
    let bad = |c: Option<char>| {
        PgError::Config(format!(
            "{what}: invalid template \"{text}\": %{} is not one of %% %s %u %d %S %U %D %1..%9",
            c.map(String::from).unwrap_or_default()
        ))
    };
    match rest.next() {
        Some('%') => Ok(None),
        Some('s' | 'S') => Ok(Some(Ph::Key)),
        Some('u' | 'U') => Ok(Some(Ph::Local)),
        Some('d' | 'D') => Ok(Some(Ph::Domain)),
        Some(c @ '1'..='9') => Ok(Some(Ph::Label(c as u8 - b'0'))),
        c => Err(bad(c)),
    }
}

/// A compiled `query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// As the administrator wrote it.
    template: String,
    /// The statement sent to the server, with `$1`..`$n`.
    sql: String,
    /// What each `$n` stands for.
    params: Vec<Ph>,
}

/// Where the lexer is in the SQL text.
enum Lex {
    Normal,
    /// A standard string `'...'` (standard_conforming_strings = on, the
    /// default since PostgreSQL 9.1: a backslash is an ordinary character).
    Str,
    /// `E'...'` (backslash escapes).
    EStr,
    /// `"identifier"`.
    Ident,
    /// `$tag$ ... $tag$`.
    Dollar(String),
    LineComment,
    BlockComment(usize),
}

enum Part {
    Text(String),
    Param(usize),
}

impl Query {
    pub fn compile(template: &str) -> Result<Query, PgError> {
        Query::compile_in(Dialect::Postfix, template)
    }

    /// `compile` for a template in `dialect`'s `%` letters.
    pub fn compile_in(dialect: Dialect, template: &str) -> Result<Query, PgError> {
        let percent = |rest: &mut std::str::Chars<'_>, what: &str, text: &str| {
            percent_in(dialect, rest, what, text)
        };
        if template.len() > MAX_TEMPLATE {
            return Err(PgError::Config("query: longer than 64 KiB".into()));
        }
        if template.contains('\0') {
            return Err(PgError::Config("query: contains a NUL byte".into()));
        }
        let mut sql = String::with_capacity(template.len() + 16);
        let mut params: Vec<Ph> = Vec::new();
        let mut state = Lex::Normal;
        // The current standard string literal, split at placeholders.
        let mut parts: Vec<Part> = Vec::new();
        let mut chars = template.chars();
        let mut prev: Option<char> = None;
        let refuse = |where_: &str| {
            PgError::Config(format!(
                "query: a placeholder inside {where_} cannot be sent as a parameter; write it as a plain '%s' string (in \"{template}\")"
            ))
        };
        let ident_char = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        while let Some(c) = chars.next() {
            match &mut state {
                Lex::Normal => match c {
                    '%' => match percent(&mut chars, "query", template)? {
                        None => sql.push('%'),
                        Some(ph) => {
                            params.push(ph);
                            sql.push_str(&format!("${}", params.len()));
                        }
                    },
                    '\'' => {
                        if matches!(prev, Some('E' | 'e'))
                            && !ident_char(sql[..sql.len() - 1].chars().next_back())
                        {
                            sql.push(c);
                            state = Lex::EStr;
                        } else if sql.ends_with("U&") || sql.ends_with("u&") {
                            // Unicode escapes: treated like E'' (no parameters).
                            sql.push(c);
                            state = Lex::EStr;
                        } else {
                            parts.clear();
                            parts.push(Part::Text(String::new()));
                            state = Lex::Str;
                        }
                    }
                    '"' => {
                        sql.push(c);
                        state = Lex::Ident;
                    }
                    '$' if !ident_char(prev) => {
                        // $n positional parameters belong to yubin; $tag$ opens
                        // a dollar-quoted string.
                        let rest = chars.as_str();
                        if rest.starts_with(|c: char| c.is_ascii_digit()) {
                            return Err(PgError::Config(format!(
                                "query: \"${}\": write %s (and %u, %d, ...) instead of positional parameters",
                                rest.chars().take_while(char::is_ascii_digit).collect::<String>()
                            )));
                        }
                        let tag: String = rest
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        if rest[tag.len()..].starts_with('$') {
                            for _ in 0..=tag.chars().count() {
                                chars.next();
                            }
                            sql.push('$');
                            sql.push_str(&tag);
                            sql.push('$');
                            state = Lex::Dollar(tag);
                        } else {
                            sql.push(c);
                        }
                    }
                    '-' if chars.as_str().starts_with('-') => {
                        sql.push(c);
                        state = Lex::LineComment;
                    }
                    '/' if chars.as_str().starts_with('*') => {
                        chars.next();
                        sql.push_str("/*");
                        state = Lex::BlockComment(1);
                    }
                    c => sql.push(c),
                },
                Lex::Str => match c {
                    '\'' if chars.as_str().starts_with('\'') => {
                        chars.next();
                        if let Some(Part::Text(t)) = parts.last_mut() {
                            t.push_str("''");
                        }
                    }
                    '\'' => {
                        emit_literal(&mut sql, &parts);
                        state = Lex::Normal;
                    }
                    '%' => match percent(&mut chars, "query", template)? {
                        None => push_text(&mut parts, '%'),
                        Some(ph) => {
                            params.push(ph);
                            parts.push(Part::Param(params.len()));
                            parts.push(Part::Text(String::new()));
                        }
                    },
                    c => push_text(&mut parts, c),
                },
                Lex::EStr => match c {
                    '\\' => {
                        sql.push(c);
                        if let Some(n) = chars.next() {
                            if n == '%' {
                                return Err(refuse("an E'...' string"));
                            }
                            sql.push(n);
                        }
                    }
                    '\'' if chars.as_str().starts_with('\'') => {
                        chars.next();
                        sql.push_str("''");
                    }
                    '\'' => {
                        sql.push(c);
                        state = Lex::Normal;
                    }
                    '%' => match percent(&mut chars, "query", template)? {
                        None => sql.push('%'),
                        Some(_) => return Err(refuse("an E'...' string")),
                    },
                    c => sql.push(c),
                },
                Lex::Ident => match c {
                    '"' => {
                        sql.push(c);
                        state = Lex::Normal;
                    }
                    '%' => match percent(&mut chars, "query", template)? {
                        None => sql.push('%'),
                        Some(_) => return Err(refuse("a quoted identifier")),
                    },
                    c => sql.push(c),
                },
                Lex::Dollar(tag) => match c {
                    '$' if chars
                        .as_str()
                        .strip_prefix(tag.as_str())
                        .is_some_and(|r| r.starts_with('$')) =>
                    {
                        let n = tag.chars().count() + 1;
                        for _ in 0..n {
                            chars.next();
                        }
                        sql.push('$');
                        sql.push_str(tag);
                        sql.push('$');
                        state = Lex::Normal;
                    }
                    '%' => match percent(&mut chars, "query", template)? {
                        None => sql.push('%'),
                        Some(_) => return Err(refuse("a dollar-quoted string")),
                    },
                    c => sql.push(c),
                },
                Lex::LineComment => match c {
                    '\n' => {
                        sql.push(c);
                        state = Lex::Normal;
                    }
                    '%' => match percent(&mut chars, "query", template)? {
                        None => sql.push('%'),
                        Some(_) => return Err(refuse("a comment")),
                    },
                    c => sql.push(c),
                },
                Lex::BlockComment(depth) => match c {
                    '*' if chars.as_str().starts_with('/') => {
                        chars.next();
                        sql.push_str("*/");
                        *depth -= 1;
                        if *depth == 0 {
                            state = Lex::Normal;
                        }
                    }
                    '/' if chars.as_str().starts_with('*') => {
                        chars.next();
                        sql.push_str("/*");
                        *depth += 1;
                    }
                    '%' => match percent(&mut chars, "query", template)? {
                        None => sql.push('%'),
                        Some(_) => return Err(refuse("a comment")),
                    },
                    c => sql.push(c),
                },
            }
            prev = Some(c);
        }
        match state {
            Lex::Normal | Lex::LineComment => {}
            _ => {
                return Err(PgError::Config(format!(
                    "query: unterminated string, identifier or comment in \"{template}\""
                )))
            }
        }
        Ok(Query {
            template: template.to_string(),
            sql,
            params,
        })
    }

    /// The statement sent to the server.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    pub fn params(&self) -> &[Ph] {
        &self.params
    }

    /// The parameter values for `key`, or `None` when the query is
    /// suppressed (the lookup then finds nothing, as in Postfix).
    pub fn bind<'a>(&self, key: &'a str) -> Option<Vec<std::borrow::Cow<'a, str>>> {
        self.params.iter().map(|p| p.value(key)).collect()
    }

    /// `bind`, with `%w` standing for `secret`.
    pub fn bind_with<'a>(
        &self,
        key: &'a str,
        secret: &'a str,
    ) -> Option<Vec<std::borrow::Cow<'a, str>>> {
        self.params
            .iter()
            .map(|p| match p {
                Ph::Secret => Some(std::borrow::Cow::Borrowed(secret)),
                p => p.value(key),
            })
            .collect()
    }

    /// The statement and its parameters as `yubin trace` and `postmap -q -v`
    /// show them: `SELECT ... = $1  [$1='key']`.
    pub fn render(&self, values: &[std::borrow::Cow<'_, str>]) -> String {
        let mut out = self.sql.clone();
        if !values.is_empty() {
            out.push_str("  [");
            for (i, (v, p)) in values.iter().zip(&self.params).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!(
                    "${}={}='{}'",
                    i + 1,
                    p.letter(),
                    v.replace('\'', "''").escape_debug()
                ));
            }
            out.push(']');
        }
        out
    }
}

fn push_text(parts: &mut [Part], c: char) {
    if let Some(Part::Text(t)) = parts.last_mut() {
        t.push(c);
    }
}

/// Writes a standard string literal: as written when it holds no
/// placeholder, `$n` when it is one placeholder, else a concatenation.
fn emit_literal(sql: &mut String, parts: &[Part]) {
    let nonempty: Vec<&Part> = parts
        .iter()
        .filter(|p| !matches!(p, Part::Text(t) if t.is_empty()))
        .collect();
    match nonempty.as_slice() {
        [] => sql.push_str("''"),
        [Part::Text(t)] => {
            sql.push('\'');
            sql.push_str(t);
            sql.push('\'');
        }
        [Part::Param(n)] => sql.push_str(&format!("${n}")),
        many => {
            sql.push('(');
            for (i, p) in many.iter().enumerate() {
                if i > 0 {
                    sql.push_str(" || ");
                }
                match p {
                    Part::Text(t) => {
                        sql.push('\'');
                        sql.push_str(t);
                        sql.push('\'');
                    }
                    Part::Param(n) => sql.push_str(&format!("CAST(${n} AS text)")),
                }
            }
            sql.push(')');
        }
    }
}

/// One piece of a compiled `result_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    /// Lower case: of the result value.
    OfValue(Ph),
    /// Upper case: of the lookup key.
    OfKey(Ph),
}

/// A compiled `result_format` (default `%s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFormat(Vec<Seg>);

impl ResultFormat {
    pub fn parse(text: &str) -> Result<ResultFormat, PgError> {
        if text.len() > MAX_TEMPLATE {
            return Err(PgError::Config("result_format: longer than 64 KiB".into()));
        }
        let mut segs = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let upper = chars.as_str().starts_with(['S', 'U', 'D']);
            match percent(&mut chars, "result_format", text)? {
                None => lit.push('%'),
                Some(ph) => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit(std::mem::take(&mut lit)));
                    }
                    segs.push(if upper {
                        Seg::OfKey(ph)
                    } else {
                        Seg::OfValue(ph)
                    });
                }
            }
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Ok(ResultFormat(segs))
    }

    /// One result value formatted, or `None` when it adds nothing (an
    /// empty value, or an expansion that does not apply: db_common_expand).
    pub fn apply(&self, value: &str, key: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        let mut out = String::new();
        for s in &self.0 {
            match s {
                Seg::Lit(t) => out.push_str(t),
                Seg::OfValue(p) => out.push_str(&p.value(value)?),
                Seg::OfKey(p) => out.push_str(&p.value(key)?),
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(t: &str) -> String {
        Query::compile(t).unwrap().sql().to_string()
    }

    #[test]
    fn literals_become_parameters() {
        assert_eq!(
            sql("SELECT goto FROM alias WHERE address='%s' AND active = '1'"),
            "SELECT goto FROM alias WHERE address=$1 AND active = '1'"
        );
        assert_eq!(
            sql("SELECT x FROM t WHERE a = '%u@example.com' OR b = 'it''s %d'"),
            "SELECT x FROM t WHERE a = (CAST($1 AS text) || '@example.com') OR b = ('it''s ' || CAST($2 AS text))"
        );
        assert_eq!(
            sql("SELECT uid FROM u WHERE id = %s"),
            "SELECT uid FROM u WHERE id = $1"
        );
        assert_eq!(
            sql("SELECT a FROM t WHERE k LIKE '%%@%d' AND x = 'a\\'"),
            "SELECT a FROM t WHERE k LIKE ('%@' || CAST($1 AS text)) AND x = 'a\\'"
        );
        assert_eq!(
            sql("SELECT '%1.%2' -- %% ok"),
            "SELECT (CAST($1 AS text) || '.' || CAST($2 AS text)) -- % ok"
        );
        assert_eq!(
            sql("SELECT $q$a$q$, \"c\" FROM t"),
            "SELECT $q$a$q$, \"c\" FROM t"
        );
        assert_eq!(sql("SELECT E'\\'', '%s'"), "SELECT E'\\'', $1");
    }

    #[test]
    fn refused_templates() {
        for t in [
            "SELECT \"%s\" FROM t",
            "SELECT E'%s'",
            "SELECT $$%s$$",
            "SELECT 1 -- %s",
            "SELECT 1 /* %s */",
            "SELECT '%s",
            "SELECT '%x'",
            "SELECT %",
            "SELECT $1",
        ] {
            assert!(Query::compile(t).is_err(), "{t}");
        }
    }

    #[test]
    fn expansions_and_suppression() {
        let q = Query::compile("SELECT '%s' '%u' '%d' '%1' '%2' '%3'").unwrap();
        let v = q.bind("User@Mail.Example.COM").unwrap();
        assert_eq!(
            v,
            [
                "User@Mail.Example.COM",
                "User",
                "Mail.Example.COM",
                "com",
                "example",
                "mail"
            ]
        );
        assert!(q.bind("user@example.com").is_none()); // no third label
        let q = Query::compile("SELECT '%u'").unwrap();
        assert_eq!(q.bind("root").unwrap(), ["root"]);
        assert!(q.bind("@example.com").is_none());
        let q = Query::compile("SELECT '%d'").unwrap();
        assert!(q.bind("root").is_none());
        assert!(q.bind("root@").is_none());
        assert_eq!(q.bind("@example.com").unwrap(), ["example.com"]);
        assert_eq!(
            Query::compile("SELECT x WHERE k='%s'")
                .unwrap()
                .render(&q.bind("a'b@x").unwrap()),
            "SELECT x WHERE k=$1  [$1=%s='x']"
        );
    }

    #[test]
    fn dovecot_letters() {
        let q = Query::compile_in(
            Dialect::Dovecot,
            "UPDATE users SET password = '%w' WHERE username = '%u' AND local = '%n' AND dom = '%d'",
        )
        .unwrap();
        assert_eq!(
            q.sql(),
            "UPDATE users SET password = $1 WHERE username = $2 AND local = $3 AND dom = $4"
        );
        assert_eq!(
            q.bind_with("a@b.example", "{PLAIN}x").unwrap(),
            ["{PLAIN}x", "a@b.example", "a", "b.example"]
        );
        // %w outside bind_with suppresses the statement.
        assert!(q.bind("a@b.example").is_none());
        assert!(Query::compile_in(Dialect::Dovecot, "SELECT '%s'").is_err());
    }

    #[test]
    fn result_format() {
        let f = ResultFormat::parse("smtp:[%d] for %U (%%)").unwrap();
        assert_eq!(
            f.apply("a@relay.example", "bob@x").unwrap(),
            "smtp:[relay.example] for bob (%)"
        );
        assert!(f.apply("norelay", "bob@x").is_none());
        assert!(f.apply("", "bob@x").is_none());
        assert_eq!(
            ResultFormat::parse("%s").unwrap().apply("v", "k").unwrap(),
            "v"
        );
        assert!(ResultFormat::parse("%q").is_err());
    }
}
