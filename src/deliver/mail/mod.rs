//! Email: [`render`] turns stored incident context into a text + HTML mail with an inline
//! chart ([`chart`]); [`transport`] sends it over SMTP. Which mails go out, grouped how, is
//! the delivery worker's business (`deliver::send`).

pub mod chart;
pub mod render;
pub mod transport;
