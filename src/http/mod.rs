//! HTTP plumbing shared by every handler: reading JSON bodies and query strings through the
//! size limit, the response envelope, request ids, client addresses and cookies.

pub mod cookies;
pub mod input;
pub mod respond;
pub mod server;
