//! How the typed ids of `crate::ids` and the statuses of `crate::status` are stored: as TEXT,
//! the bare string (an unknown status word in a row is a read error, never a guess).

use crate::ids::{OrgId, SessionId, UserId};
use crate::status::{BrowserState, InvitationState, MemberStatus, OrgStatus, UserStatus};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

macro_rules! sql_id {
    ($($name:ident),*) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                String::column_result(v).map($name::from_wire)
            }
        }
    )*};
}

sql_id!(OrgId, UserId, SessionId);

macro_rules! sql_status {
    ($($name:ident),*) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = v.as_str()?;
                $name::parse(s).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} {s:?}", stringify!($name)).into())
                })
            }
        }
    )*};
}

sql_status!(
    UserStatus,
    MemberStatus,
    OrgStatus,
    InvitationState,
    BrowserState
);
