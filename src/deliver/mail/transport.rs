//! The SMTP transport: lettre's async, pooled client, from `SEISMO_SMTP_URL`:
//! `smtp://host:25` (no TLS), `smtp://user:pass@host:587?tls=required` (STARTTLS),
//! `smtps://user:pass@host:465` (TLS from the first byte). Unset: email is disabled, said
//! once in the log, and email deliveries wait (they are sent once SMTP is configured).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::render::Rendered;
use crate::config::SecretUrl;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SEISMO_SMTP_URL is not usable: {0}")]
    Url(String),
    #[error("SEISMO_MAIL_FROM {0:?} is not an address")]
    From(String),
    #[error("{0:?} is not an email address")]
    To(String),
    #[error("email is disabled (SEISMO_SMTP_URL and SEISMO_MAIL_FROM are not both set)")]
    Disabled,
    #[error("building the mail failed: {0}")]
    Build(String),
    #[error("the SMTP server did not take the mail: {0}")]
    Send(String),
}

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Disabled,
}

impl Mailer {
    pub fn from_config(
        url: Option<&SecretUrl>,
        from: Option<&str>,
        timeout: Duration,
    ) -> Result<Mailer, MailError> {
        let (Some(url), Some(from)) = (url, from) else {
            return Ok(Mailer::Disabled);
        };
        let from: Mailbox = from.parse().map_err(|_| MailError::From(from.to_owned()))?;
        // lettre's errors about a URL never quote its password.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| MailError::Url(e.to_string()))?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(4))
            .build();
        Ok(Mailer::Smtp { transport, from })
    }

    pub fn is_enabled(&self) -> bool {
        matches!(self, Mailer::Smtp { .. })
    }

    pub async fn send(&self, mail: &Rendered, to: &[String]) -> Result<(), MailError> {
        let Mailer::Smtp { transport, from } = self else {
            return Err(MailError::Disabled);
        };
        let message = build(mail, from, to)?;
        transport
            .send(message)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        Ok(())
    }
}

/// Checks an address as the API takes it (`ops@example.com`, `Ops <ops@example.com>`).
pub fn parse_address(text: &str) -> Result<Mailbox, MailError> {
    text.parse().map_err(|_| MailError::To(text.to_owned()))
}

/// multipart/alternative: the text part, and multipart/related with the HTML part and
/// the chart it shows by `cid:`.
fn build(mail: &Rendered, from: &Mailbox, to: &[String]) -> Result<Message, MailError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(mail.subject.clone());
    for address in to {
        builder = builder.to(parse_address(address)?);
    }
    let mut related = MultiPart::related().singlepart(SinglePart::html(mail.html.clone()));
    if let Some((cid, png)) = &mail.chart {
        let png_type =
            ContentType::parse("image/png").map_err(|e| MailError::Build(e.to_string()))?;
        related =
            related.singlepart(Attachment::new_inline(cid.clone()).body(png.clone(), png_type));
    }
    let body = MultiPart::alternative()
        .singlepart(SinglePart::plain(mail.text.clone()))
        .multipart(related);
    builder
        .multipart(body)
        .map_err(|e| MailError::Build(e.to_string()))
}
