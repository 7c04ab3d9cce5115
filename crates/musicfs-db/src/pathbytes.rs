use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};

/// Path bytes as stored in `ANY` columns: TEXT when valid UTF-8, BLOB otherwise.
///
/// The storage class is a function of the bytes, so equality and UNIQUE constraints behave as
/// on raw bytes, non-UTF-8 names round-trip exactly, and `WHERE name = 'x.flac'` works in
/// sqlite3. Always bind path columns through this type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathBytes<'a>(pub std::borrow::Cow<'a, [u8]>);

impl<'a> PathBytes<'a> {
    pub fn borrowed(bytes: &'a [u8]) -> Self {
        PathBytes(std::borrow::Cow::Borrowed(bytes))
    }
}

impl ToSql for PathBytes<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match std::str::from_utf8(&self.0) {
            Ok(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Err(_) => ToSqlOutput::Borrowed(ValueRef::Blob(&self.0)),
        })
    }
}

impl FromSql for PathBytes<'static> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Text(b) | ValueRef::Blob(b) => {
                Ok(PathBytes(std::borrow::Cow::Owned(b.to_vec())))
            }
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

impl PathBytes<'_> {
    pub fn into_vec(self) -> Vec<u8> {
        self.0.into_owned()
    }
}
