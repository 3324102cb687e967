//! What a request does, shared by the JSON API (`api/`) and the hosted pages (`ui/`): the
//! handlers parse and answer, these do the work. No handler module imports another; they
//! meet here, in `session::login` (signing in) and in the support modules of `api/`
//! (`guard`, `views`, `links`).

pub mod account;
pub mod email;
pub mod invite;
pub mod oauth_clients;
pub mod org_settings;
pub mod public_invite;
pub mod two_factor;
