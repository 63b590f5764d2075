//! `seismo check`: one line per thing Seismo depends on; exits non-zero if any is broken.

use std::time::Duration;

use super::{database, load_config};
use crate::config::Config;
use crate::store;

pub async fn run(
    file: Option<&std::path::Path>,
    database_url: Option<String>,
) -> anyhow::Result<()> {
    let config = match load_config(file, database_url) {
        Ok(config) => {
            println!("config:   ok");
            config
        }
        Err(error) => {
            println!("config:   FAILED: {error}");
            anyhow::bail!("the configuration is invalid");
        }
    };
    let database_ok = check_database(&config).await;
    let smtp_ok = check_smtp(&config).await;
    if !(database_ok && smtp_ok) {
        anyhow::bail!("some checks failed");
    }
    Ok(())
}

async fn check_database(config: &Config) -> bool {
    match database::open(config).await {
        Ok(database) => {
            let version = store::server_version(&database.pool).await;
            println!(
                "database: ok (PostgreSQL {}, schema up to date)",
                version.unwrap_or_default()
            );
            database.close().await;
            true
        }
        Err(error) => {
            println!("database: FAILED: {error:#}");
            false
        }
    }
}

async fn check_smtp(config: &Config) -> bool {
    let Some(url) = &config.smtp_url else {
        println!("smtp:     not configured (email disabled)");
        return true;
    };
    let parsed = url::Url::parse(url.expose()).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let default_port = if parsed.as_ref().is_some_and(|u| u.scheme() == "smtps") {
        465
    } else {
        587
    };
    let port = parsed
        .as_ref()
        .and_then(url::Url::port)
        .unwrap_or(default_port);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => {
            println!("smtp:     ok ({host}:{port} accepts connections)");
            true
        }
        Ok(Err(error)) => {
            println!("smtp:     FAILED: {host}:{port}: {error}");
            false
        }
        Err(_) => {
            println!("smtp:     FAILED: {host}:{port}: no answer within 5 s");
            false
        }
    }
}
