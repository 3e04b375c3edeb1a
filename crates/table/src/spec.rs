//! `type:name` table references as they appear in main.cf (table(5)).

use crate::error::TableError;

/// The kinds of table yubin understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// hash, btree, cdb, lmdb, dbm: indexed files compiled by `postmap`.
    Indexed,
    Texthash,
    Static,
    Inline,
    Regexp,
    Cidr,
    /// `pgsql:/etc/yubin/file.cf`: a PostgreSQL query (pgsql_table(5));
    /// lookups may fail temporarily.
    Pgsql,
}

/// A parsed `type:name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The type as written (`hash`, `cdb`, ...).
    pub type_name: String,
    pub kind: Kind,
    /// The file name, or the inline/static text.
    pub name: String,
}

impl TableSpec {
    /// Parses `type:name`. `default_type` (main.cf `default_database_type`)
    /// applies to a bare path, as `postmap FILE` does.
    pub fn parse(text: &str, default_type: &str) -> Result<TableSpec, TableError> {
        let (type_name, name) = match text.split_once(':') {
            Some((t, n)) if !t.contains('/') && !t.contains('{') => (t, n),
            _ => (default_type, text),
        };
        let kind = match type_name {
            "hash" | "btree" | "cdb" | "lmdb" | "dbm" | "sdbm" => Kind::Indexed,
            "texthash" => Kind::Texthash,
            "static" => Kind::Static,
            "inline" => Kind::Inline,
            "regexp" | "pcre" => Kind::Regexp,
            "cidr" => Kind::Cidr,
            "pgsql" => Kind::Pgsql,
            "proxy" => {
                // proxy:type:name is Postfix's proxymap(8) indirection; yubin is
                // one process and reads the inner table directly.
                return TableSpec::parse(name, default_type);
            }
            other => {
                return Err(TableError::Spec(format!(
                    "unsupported dictionary type: {other} (in \"{text}\"); yubin supports hash, btree, cdb, lmdb, texthash, static, inline, regexp, pcre, cidr, pgsql"
                )))
            }
        };
        if name.is_empty() {
            return Err(TableError::Spec(format!(
                "\"{text}\": missing table name after \"{type_name}:\""
            )));
        }
        Ok(TableSpec {
            type_name: type_name.to_string(),
            kind,
            name: name.to_string(),
        })
    }

    /// Whether the table is a file read from disk (and so has a source path).
    pub fn is_file(&self) -> bool {
        matches!(
            self.kind,
            Kind::Indexed | Kind::Texthash | Kind::Regexp | Kind::Cidr
        )
    }
}

impl std::fmt::Display for TableSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.type_name, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let s = TableSpec::parse("hash:/etc/postfix/virtual", "hash").unwrap();
        assert_eq!(
            (s.kind, s.name.as_str()),
            (Kind::Indexed, "/etc/postfix/virtual")
        );
        let s = TableSpec::parse("/etc/postfix/virtual_maps", "hash").unwrap();
        assert_eq!(s.to_string(), "hash:/etc/postfix/virtual_maps");
        let s = TableSpec::parse("inline:{ a=b }", "hash").unwrap();
        assert_eq!((s.kind, s.name.as_str()), (Kind::Inline, "{ a=b }"));
        assert_eq!(TableSpec::parse("proxy:unix:passwd.byname", "hash").unwrap_err().to_string(),
            "unsupported dictionary type: unix (in \"unix:passwd.byname\"); yubin supports hash, btree, cdb, lmdb, texthash, static, inline, regexp, pcre, cidr, pgsql");
        assert!(TableSpec::parse("ldap:/etc/x", "hash").is_err());
    }
}
