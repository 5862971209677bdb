//! Small SQL helpers every store module shares: placeholders for either
//! dialect, instants as milliseconds, ids read back typed.

use super::*;

/// Bind placeholders for a statement built at run time, in bind order:
/// `$1, $2, ...` on Postgres, anonymous `?` on SQLite.
///
/// Why not `$n` everywhere: for each bind, sqlx asks SQLite the
/// parameter's name to learn its number, and SQLite finds a name by a
/// linear search of the statement's parameter list, so binding n named
/// parameters costs O(n²). At a 500-row insert (13,500 binds) that was
/// about 0.4 s per execution, the whole of a batched-ingest regression.
/// Anonymous `?` are bound by position.
pub struct Placeholders {
    numbered: bool,
    next: usize,
}

impl Placeholders {
    /// Placeholders in the dialect of the connection's backend.
    pub fn for_conn(conn: &sqlx::AnyConnection) -> Placeholders {
        Placeholders { numbered: conn.backend_name() != "SQLite", next: 0 }
    }

    /// Appends the next placeholder to `sql`.
    pub fn push(&mut self, sql: &mut String) {
        self.next += 1;
        if self.numbered {
            sql.push('$');
            sql.push_str(&self.next.to_string());
        } else {
            sql.push('?');
        }
    }

    /// Appends `(p, p, ..., p)`: a row of `n` placeholders.
    pub fn push_row(&mut self, sql: &mut String, n: usize) {
        sql.push('(');
        for c in 0..n {
            if c > 0 {
                sql.push_str(", ");
            }
            self.push(sql);
        }
        sql.push(')');
    }
}

/// Unix milliseconds of an instant.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The instant of unix milliseconds.
pub fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A user id binds as its text, so statements take `&UserId` as they are.
impl sqlx::Type<sqlx::Any> for crate::domain::identity::UserId {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <str as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for &'q crate::domain::identity::UserId {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer<'q>,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str(), buf)
    }
}

/// A user id reads back parsed; a malformed one is an error, never a value.
impl<'r> sqlx::Decode<'r, sqlx::Any> for crate::domain::identity::UserId {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let raw = <String as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
        Ok(crate::domain::identity::UserId::parse(&raw)?)
    }
}
