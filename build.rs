//! The migrations are compiled into the binary (`sqlx::migrate!` in `store`): a new or
//! changed file in `migrations/` must rebuild it, which cargo does not know on its own.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
