//! What the command-line verbs do (API.md §11). `main.rs` only parses arguments.

use crate::app::{self, App};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config};
use crate::db::{self, admin_keys, orgs, users};
use crate::status::MemberStatus;
use crate::{crypto, keys, password, validate};
use std::error::Error;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

pub type CliResult = Result<(), Box<dyn Error>>;

fn load(path: Option<&Path>) -> Result<Config, Box<dyn Error>> {
    Ok(Config::load(path)?)
}

/// Opens and migrates the database of `config`.
fn open(config: &Config) -> Result<db::Db, Box<dyn Error>> {
    let (db, snapshot) = app::open_db(config, SystemClock.now_ms())?;
    if let Some(s) = snapshot {
        eprintln!("database migrated; snapshot at {}", s.display());
    }
    Ok(db)
}

pub fn serve(path: Option<&Path>) -> CliResult {
    // Take over SIGINT/SIGTERM first, so a signal during start-up still stops gracefully.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    let config = load(path)?;
    config.refuse_placeholder_secret()?;
    let app = App::build(config, Arc::new(SystemClock))?;
    let running = app.serve()?;
    if let Some(sig) = signals.forever().next() {
        running.state.log.info(
            "signal received; stopping",
            &[("signal", serde_json::json!(sig))],
        );
    }
    running.stop();
    Ok(())
}

pub fn init(path: Option<&Path>) -> CliResult {
    let target = path.unwrap_or(Path::new("latchkey.toml"));
    let text = config::init_text(&crypto::random_hex(32));
    // Owner-only (0600): the file holds the secret key.
    let mut f = db::create_owner_only(target).map_err(|e| {
        format!(
            "cannot create {}: {e} (init never overwrites)",
            target.display()
        )
    })?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    eprintln!("wrote {}", target.display());
    Ok(())
}

pub fn check_config(path: Option<&Path>) -> CliResult {
    let config = load(path)?;
    config.refuse_placeholder_secret()?;
    match &config.source {
        config::ConfigSource::File(p) => eprintln!("{}: ok", p.display()),
        config::ConfigSource::EmbeddedDefault => eprintln!("embedded development default: ok"),
    }
    Ok(())
}

pub fn migrate(path: Option<&Path>) -> CliResult {
    let config = load(path)?;
    let db = open(&config)?;
    eprintln!(
        "{}: schema version {}",
        config.database.path.display(),
        db.version()?
    );
    Ok(())
}

/// Creates an admin key; returns it (printed alone on stdout by the command).
pub fn new_admin_key(db: &db::Db, name: &str, now: i64) -> Result<String, Box<dyn Error>> {
    let name = validate::name("name", name).map_err(|e| e.message)?;
    let key = format!("sk_admin_{}", crypto::random_hex(32));
    let id = crate::ids::new_id("adk", now);
    db.write(|tx| admin_keys::insert(tx, &id, &name, &crypto::token_hash(&key), &key[..10], now))?;
    Ok(key)
}

pub fn admin_key_create(path: Option<&Path>, name: &str) -> CliResult {
    let config = load(path)?;
    let db = open(&config)?;
    let key = new_admin_key(&db, name, SystemClock.now_ms())?;
    println!("{key}");
    Ok(())
}

pub fn org_create(path: Option<&Path>, slug: &str, name: &str) -> CliResult {
    let config = load(path)?;
    let db = open(&config)?;
    validate::slug(slug).map_err(|e| e.message)?;
    let name = validate::name("name", name).map_err(|e| e.message)?;
    let now = SystemClock.now_ms();
    let org = orgs::Org::new(slug.to_string(), name, now);
    db.write(|tx| orgs::insert(tx, &org)).map_err(|e| {
        if e.is_conflict() {
            format!("an organization with slug '{slug}' exists")
        } else {
            e.to_string()
        }
    })?;
    println!("{}", crate::api::views::org(&org));
    Ok(())
}

/// What `latchkey client create` registers (API.md §13).
pub struct ClientArgs<'a> {
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    pub post_logout_redirect_uris: &'a [String],
    pub public: bool,
    pub first_party: bool,
    pub org: Option<&'a str>,
    pub profile: &'a str,
}

/// Registers an OAuth client and prints `{client, clientSecret}` as the operator API does.
pub fn client_create(path: Option<&Path>, a: &ClientArgs<'_>) -> CliResult {
    use crate::flows::oauth_clients::{self as flow, CreateClient, Registrar};
    let config = load(path)?;
    let db = open(&config)?;
    let org = match a.org {
        Some(slug) => Some(
            db.read(|c| orgs::find_by_slug(c, slug))?
                .ok_or_else(|| format!("no organization with slug '{slug}'"))?,
        ),
        None => None,
    };
    let body = CreateClient {
        name: a.name.to_string(),
        redirect_uris: a.redirect_uris.to_vec(),
        post_logout_redirect_uris: a.post_logout_redirect_uris.to_vec(),
        public: a.public,
        first_party: a.first_party,
        org_slug: None,
        profile: Some(a.profile.to_string()),
    };
    let now = SystemClock.now_ms();
    let (client, secret) = flow::new_client(&config, &body, org.as_ref(), Registrar::Operator, now)
        .map_err(|e| match e.errors.first() {
            Some(f) => format!("{}: {}", f.field, f.message),
            None => e.message.clone(),
        })?;
    db.write(|tx| crate::db::oauth::insert_client(tx, &client))?;
    println!(
        "{}",
        serde_json::json!({ "client": flow::view(&client, org.as_ref()), "clientSecret": secret })
    );
    Ok(())
}

pub fn user_create(
    path: Option<&Path>,
    email: &str,
    password_stdin: bool,
    name: Option<&str>,
    seat: Option<(&str, &str)>,
) -> CliResult {
    let config = load(path)?;
    let db = open(&config)?;
    let email = validate::email(email).map_err(|e| e.message)?;
    let name = name
        .map(|n| validate::name("name", n))
        .transpose()
        .map_err(|e| e.message)?;
    if let Some((_, role)) = seat {
        validate::org_role("role", role).map_err(|e| e.message)?;
    }
    let password_hash = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']);
        password::check_policy(&config.password, None, "password", pw).map_err(|e| e.message)?;
        let hasher = password::Hasher::new(config.argon2.clone(), 1, 0);
        Some(hasher.hash(pw).map_err(|e| e.message)?)
    } else {
        None
    };
    let now = SystemClock.now_ms();
    let user = users::User {
        password_hash,
        name,
        ..users::User::new(email, now)
    };
    let membership = db.write(|tx| -> Result<Option<users::Membership>, Box<dyn Error>> {
        users::insert(tx, &user).map_err(|e| {
            if e.is_conflict() {
                "a user with this email already exists".to_string()
            } else {
                e.to_string()
            }
        })?;
        let Some((slug, role)) = seat else {
            return Ok(None);
        };
        let org = orgs::find_by_slug(tx, slug)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no organization '{slug}'"))?;
        let m = users::Membership {
            id: crate::ids::new_id("mem", now),
            org_id: org.id,
            user_id: user.id.clone(),
            role: role.to_string(),
            status: MemberStatus::Active,
            metadata: serde_json::json!({}),
            joined_at: now,
        };
        users::insert_membership(tx, &m).map_err(|e| e.to_string())?;
        Ok(Some(m))
    })?;
    let mut out = serde_json::json!({ "user": crate::api::views::user(&user) });
    if let Some(m) = membership {
        out["membership"] = crate::api::views::membership(&m);
    }
    println!("{out}");
    Ok(())
}

/// `latchkey keys rotate [--alg ALG]`: a new active key for the configured `tokens.algorithm`
/// (access tokens), or with `--alg RS256` for the RS256 key (id_tokens; the same key when the
/// configured algorithm is RS256). Any other algorithm has no active key to rotate.
pub fn keys_rotate(path: Option<&Path>, alg: Option<&str>) -> CliResult {
    let config = load(path)?;
    let primary = config.tokens.algorithm;
    let alg = match alg {
        None => primary,
        Some(name) => match config::Algorithm::parse(name) {
            Some(a) if a == primary || a == config::Algorithm::RS256 => a,
            _ => {
                return Err(format!(
                    "--alg must be {primary} (tokens.algorithm) or RS256, not {name:?}"
                )
                .into());
            }
        },
    };
    let db = open(&config)?;
    let secret = app::resolve_secret(&config, &db)?;
    let publish_ms = config.tokens.access_ttl.as_millis() as i64 + 5 * 60 * 1000;
    let kid = keys::rotate(&db, secret.expose(), alg, SystemClock.now_ms(), publish_ms)?;
    eprintln!(
        "new {alg} signing key {kid} is active; the previous {alg} key stays published until its tokens expire"
    );
    println!("{kid}");
    Ok(())
}

pub fn backup(path: Option<&Path>, dest: &Path) -> CliResult {
    let config = load(path)?;
    let db = db::Db::open(&config.database.path, config.database.busy_timeout)?;
    db.backup_to(dest)?;
    eprintln!("wrote {}", dest.display());
    Ok(())
}
