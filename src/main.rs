//! The `latchkey` command line: serve, set up, inspect and maintain a deployment.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use latchkey::cli;
use std::path::PathBuf;
use std::process::ExitCode;

/// Latchkey: a self-hosted authentication server for multi-tenant B2B apps — one binary,
/// one SQLite file, one TOML config.
#[derive(Parser)]
#[command(name = "latchkey", version, about, long_about = None)]
struct Cli {
    /// The TOML config file; without one, `serve` runs on the embedded development default.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGINT/SIGTERM, then finish in-flight requests and stop.
    Serve,
    /// Write a new config file with a freshly generated secret key (never overwrites).
    Init,
    /// Validate the config file; an error names the key and the file.
    CheckConfig,
    /// Print configuration material.
    Config {
        #[command(subcommand)]
        what: ConfigCommand,
    },
    /// Bring the database to this binary's schema, after writing a snapshot beside it.
    Migrate,
    /// Manage operator (admin) keys.
    AdminKey {
        #[command(subcommand)]
        what: AdminKeyCommand,
    },
    /// Manage organizations.
    Org {
        #[command(subcommand)]
        what: OrgCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        what: UserCommand,
    },
    /// Manage OAuth / OpenID Connect clients.
    Client {
        #[command(subcommand)]
        what: ClientCommand,
    },
    /// Manage JWT signing keys.
    Keys {
        #[command(subcommand)]
        what: KeysCommand,
    },
    /// Write a consistent copy of the live database to FILE.
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the embedded, fully commented example config.
    Example,
}

#[derive(Subcommand)]
enum AdminKeyCommand {
    /// Create an admin key and print it alone on stdout (it is shown only once).
    Create {
        /// A name to recognise the key by.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization and print it as JSON.
    Create {
        /// URL-safe identifier, e.g. acme-corp.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user (optionally seated in an org) and print it as JSON.
    Create {
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Seat the user in this org (slug).
        #[arg(long)]
        org: Option<String>,
        /// Role in --org: owner, org_admin or member.
        #[arg(long, default_value = "member", requires = "org")]
        role: String,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client and print it as JSON with its secret (shown only once).
    Create {
        /// A name people see on the consent screen.
        #[arg(long)]
        name: String,
        /// A redirect URI, matched exactly (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A post-logout redirect URI (repeat for several).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (SPA, CLI, mobile): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        /// A first-party client: no consent screen.
        #[arg(long)]
        first_party: bool,
        /// Make it org-owned: only this org's members, tokens only for this org (slug).
        #[arg(long)]
        org: Option<String>,
        /// oidc (default) or workos.
        #[arg(long, default_value = "oidc")]
        profile: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key active; the old one stays in the JWKS until its tokens expire.
    Rotate {
        /// Which key: the configured `tokens.algorithm` (the default; access tokens) or
        /// `RS256` (id_tokens).
        #[arg(long, value_name = "ALG")]
        alg: Option<String>,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    let config = args.config.as_deref();
    let result = match args.command {
        Command::Serve => cli::serve(config),
        Command::Init => cli::init(config),
        Command::CheckConfig => cli::check_config(config),
        Command::Config {
            what: ConfigCommand::Example,
        } => {
            print!("{}", latchkey::config::EXAMPLE);
            Ok(())
        }
        Command::Migrate => cli::migrate(config),
        Command::AdminKey {
            what: AdminKeyCommand::Create { name },
        } => cli::admin_key_create(config, &name),
        Command::Org {
            what: OrgCommand::Create { slug, name },
        } => cli::org_create(config, &slug, &name),
        Command::User {
            what:
                UserCommand::Create {
                    email,
                    password_stdin,
                    name,
                    org,
                    role,
                },
        } => cli::user_create(
            config,
            &email,
            password_stdin,
            name.as_deref(),
            org.as_deref().map(|o| (o, role.as_str())),
        ),
        Command::Client {
            what:
                ClientCommand::Create {
                    name,
                    redirect_uris,
                    post_logout_redirect_uris,
                    public,
                    first_party,
                    org,
                    profile,
                },
        } => cli::client_create(
            config,
            &cli::ClientArgs {
                name: &name,
                redirect_uris: &redirect_uris,
                post_logout_redirect_uris: &post_logout_redirect_uris,
                public,
                first_party,
                org: org.as_deref(),
                profile: &profile,
            },
        ),
        Command::Keys {
            what: KeysCommand::Rotate { alg },
        } => cli::keys_rotate(config, alg.as_deref()),
        Command::Backup { file } => cli::backup(config, &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}
