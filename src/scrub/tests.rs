//! Whole-payload and whole-event tests, properties, and a timing print.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::model::Exception;

fn scrubbed(mut value: Value) -> (Value, usize) {
    let count = scrub_value(&mut value, &Settings::default());
    (value, count)
}

fn scrubbed_with(mut value: Value, settings: &Settings) -> (Value, usize) {
    let count = scrub_value(&mut value, settings);
    (value, count)
}

#[test]
fn secret_keys_in_nested_objects_filter_any_value() {
    let (value, count) = scrubbed(json!({
        "config": {
            "db": {"host": "db", "db_password": "pw", "port": 5432},
            "API-KEY": 12345,
            "credentials": {"user": "u", "pass": "p"},
            "tokens": ["a", "b"],
            "enabled": true,
        }
    }));
    assert_eq!(
        value,
        json!({
            "config": {
                "db": {"host": "db", "db_password": "[Filtered]", "port": 5432},
                "API-KEY": "[Filtered]",
                "credentials": "[Filtered]",
                "tokens": "[Filtered]",
                "enabled": true,
            }
        })
    );
    assert_eq!(count, 4);
}

/// Issue 17: a frame variable holding a dict whose keys *contain* a secret word.
#[test]
fn keys_containing_secret_words_are_filtered_and_author_words_kept() {
    let (value, count) = scrubbed(json!({
        "vars": {"headers": {
            "Authorization header": "Bearer abc",
            "x_auth_user": "u-1",
            "aiohttp_session": "s-1",
            "remember_cookie": "c-1",
            "author": "Jane",
            "authority": "example.com",
            "authored_by": "jdoe",
            "cookies": {"theme": "dark", "session": "s-2"},
        }}
    }));
    assert_eq!(
        value,
        json!({
            "vars": {"headers": {
                "Authorization header": "[Filtered]",
                "x_auth_user": "[Filtered]",
                "aiohttp_session": "[Filtered]",
                "remember_cookie": "[Filtered]",
                "author": "Jane",
                "authority": "example.com",
                "authored_by": "jdoe",
                "cookies": {"theme": "dark", "session": "[Filtered]"},
            }}
        })
    );
    assert_eq!(count, 5);
}

#[test]
fn secret_keys_in_arrays_of_objects() {
    let (value, count) = scrubbed(json!([
        {"name": "a", "secret": "s1"},
        {"name": "b", "nested": [{"Passwd": "s2"}]},
    ]));
    assert_eq!(
        value,
        json!([
            {"name": "a", "secret": "[Filtered]"},
            {"name": "b", "nested": [{"Passwd": "[Filtered]"}]},
        ])
    );
    assert_eq!(count, 2);
}

#[test]
fn header_pair_lists() {
    let (value, count) = scrubbed(json!({"headers": [
        ["Authorization", "Bearer abc"],
        ["Host", "example.com"],
        ["X-Api-Key", "k"],
        ["Cookie", "a=b"],
        ["Accept", "text/html"],
    ]}));
    assert_eq!(
        value,
        json!({"headers": [
            ["Authorization", "[Filtered]"],
            ["Host", "example.com"],
            ["X-Api-Key", "[Filtered]"],
            ["Cookie", "[Filtered]"],
            ["Accept", "text/html"],
        ]})
    );
    assert_eq!(count, 3);
}

#[test]
fn arrays_that_are_not_pair_lists_are_plain_values() {
    let list = json!({"words": ["password", "hunter2"], "mixed": [["token", "x"], 1]});
    assert_eq!(scrubbed(list.clone()), (list, 0));
}

#[test]
fn query_strings_cookie_strings_and_form_bodies_in_payloads() {
    let (value, count) = scrubbed(json!({"request": {
        "query_string": "page=2&access_token=abc&sort=asc",
        "cookies": "sessionid=xyz; theme=dark; csrftoken=t",
        "data": "username=bob&password=hunter2",
        "url": "https://api.example.com/v1/items?token=abc123&page=2",
    }}));
    assert_eq!(
        value,
        json!({"request": {
            "query_string": "page=2&access_token=[Filtered]&sort=asc",
            "cookies": "sessionid=[Filtered]; theme=dark; csrftoken=[Filtered]",
            "data": "username=bob&password=[Filtered]",
            "url": "https://api.example.com/v1/items?token=[Filtered]&page=2",
        }})
    );
    assert_eq!(count, 5);
}

#[test]
fn cookie_maps_and_query_pairs() {
    let (value, _) = scrubbed(json!({"request": {
        "cookies": {"session": "abc", "theme": "dark"},
        "query_string": [["q", "rust"], ["api_key", "k"]],
    }}));
    assert_eq!(
        value,
        json!({"request": {
            "cookies": {"session": "[Filtered]", "theme": "dark"},
            "query_string": [["q", "rust"], ["api_key", "[Filtered]"]],
        }})
    );
}

#[test]
fn free_text_anywhere() {
    let (value, count) = scrubbed(json!({"logentry": {
        "message": "login failed: password=hunter2 for bob",
    }}));
    assert_eq!(
        value,
        json!({"logentry": {"message": "login failed: password=[Filtered] for bob"}})
    );
    assert_eq!(count, 1);
    assert_eq!(
        scrub_text(
            "conn postgres://app:pw@db/x token: abc",
            &Settings::default()
        ),
        "conn postgres://app:[Filtered]@db/x token: [Filtered]"
    );
}

#[test]
fn card_numbers_in_strings_and_numbers() {
    let (value, count) = scrubbed(json!({"vars": {
        "card": "4111 1111 1111 1111",
        "as_number": 4_111_111_111_111_111_u64,
        "order_id": 4_111_111_111_111_112_u64,
        "ts_ms": 1_700_000_000_003_u64,
    }}));
    assert_eq!(
        value,
        json!({"vars": {
            "card": "[Filtered]",
            "as_number": "[Filtered]",
            "order_id": 4_111_111_111_111_112_u64,
            "ts_ms": 1_700_000_000_003_u64,
        }})
    );
    assert_eq!(count, 2);
}

#[test]
fn safe_keys_override_and_extra_keys_add() {
    let settings = Settings {
        extra_keys: vec!["order_pin".into()],
        safe_keys: vec!["Session".into(), "csrf-token".into()],
        ..Settings::default()
    };
    let (value, count) = scrubbed_with(
        json!({
            "session": "keep-me",
            "csrftoken": "keep-me-too",
            "OrderPin": "1234",
            "password": "x",
            "note": "session=abc&orderPin=9",
            "safe_but_card": {"session": "4111111111111111"},
        }),
        &settings,
    );
    assert_eq!(
        value,
        json!({
            "session": "keep-me",
            "csrftoken": "keep-me-too",
            "OrderPin": "[Filtered]",
            "password": "[Filtered]",
            "note": "session=abc&orderPin=[Filtered]",
            "safe_but_card": {"session": "[Filtered]"},
        })
    );
    assert_eq!(count, 4);
}

#[test]
fn disabled_settings_do_nothing() {
    let settings = Settings {
        enabled: false,
        ..Settings::default()
    };
    let value =
        json!({"password": "x", "user": {"ip_address": "1.2.3.4"}, "m": "Bearer abc12345678"});
    assert_eq!(scrubbed_with(value.clone(), &settings), (value, 0));
    assert_eq!(scrub_text("password=x", &settings), "password=x");
    let mut event = event_with(json!({"password": "x"}));
    let before = event.clone();
    assert_eq!(scrub_event(&mut event, &settings), 0);
    assert_eq!(event, before);
}

#[test]
fn settings_default_when_fields_are_missing() {
    let settings: Settings =
        serde_json::from_value(json!({"extra_keys": ["pin"]})).unwrap_or_else(|e| panic!("{e}"));
    assert!(settings.enabled);
    assert!(!settings.keep_ip_addresses);
    assert_eq!(settings.extra_keys, vec!["pin".to_string()]);
}

#[test]
fn ip_addresses_are_filtered_by_default() {
    let value = json!({
        "user": {"id": "42", "ip_address": "203.0.113.7"},
        "request": {"env": {"REMOTE_ADDR": "203.0.113.7", "SERVER_NAME": "web1"}},
        "extra": {"upstream": "10.0.0.1"},
    });
    let (scrubbed_value, count) = scrubbed(value.clone());
    assert_eq!(
        scrubbed_value,
        json!({
            "user": {"id": "42", "ip_address": "[Filtered]"},
            "request": {"env": {"REMOTE_ADDR": "[Filtered]", "SERVER_NAME": "web1"}},
            "extra": {"upstream": "10.0.0.1"},
        })
    );
    assert_eq!(count, 2);
    let (auto, count) = scrubbed(json!({"user": {"ip_address": "{{auto}}"}}));
    assert_eq!(auto, json!({"user": {"ip_address": "[Filtered]"}}));
    assert_eq!(count, 1);
    let (null, count) = scrubbed(json!({"user": {"ip_address": null}}));
    assert_eq!((null, count), (json!({"user": {"ip_address": null}}), 0));
}

#[test]
fn ip_addresses_are_kept_when_asked() {
    let settings = Settings {
        keep_ip_addresses: true,
        ..Settings::default()
    };
    let value = json!({
        "user": {"ip_address": "{{auto}}"},
        "request": {"env": {"REMOTE_ADDR": "203.0.113.7"}},
    });
    assert_eq!(scrubbed_with(value.clone(), &settings), (value, 0));
}

/// A Sentry event as the Python SDK sends it for a failed login, about 6 KB of JSON.
fn realistic_event() -> Value {
    let frames: Vec<Value> = (0..8)
        .map(|i| {
            json!({
                "filename": format!("app/views/module_{i}.py"),
                "abs_path": format!("/srv/app/app/views/module_{i}.py"),
                "function": format!("handler_{i}"),
                "module": format!("app.views.module_{i}"),
                "lineno": 40 + i,
                "in_app": true,
                "context_line": "    result = service.call(request, user=user)",
                "vars": {
                    "self": "<app.views.LoginView object at 0x7f3a2b1c0d90>",
                    "request": "<WSGIRequest: POST '/login'>",
                    "user_id": 1000 + i,
                    "retries": i,
                },
            })
        })
        .collect();
    let breadcrumbs: Vec<Value> = (0..7)
        .map(|i| {
            json!({
                "timestamp": 1_700_000_000.5 + f64::from(i),
                "type": "http",
                "category": "httplib",
                "level": "info",
                "data": {
                    "method": "GET",
                    "url": format!("https://api.partner.example/v2/resources/{i}?page={i}&per_page=50"),
                    "status_code": 200,
                    "reason": "OK",
                },
            })
        })
        .collect();
    let mut event = json!({
        "event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0",
        "timestamp": "2024-05-01T12:00:00.123Z",
        "platform": "python",
        "level": "error",
        "logger": "app.views",
        "server_name": "web-7f9c6d5b8-x2k4p",
        "release": "app@2.14.3+build.1182",
        "environment": "production",
        "transaction": "/login",
        "message": "Login failed for bob",
        "tags": [["region", "eu-west-1"], ["session_token", "abc"], ["browser", "Firefox 125"]],
        "user": {"id": "42", "username": "bob", "email": "bob@example.com", "ip_address": "{{auto}}"},
        "request": {
            "url": "https://app.example.com/login",
            "method": "POST",
            "query_string": "next=%2Fdashboard&ref=email",
            "headers": [
                ["Host", "app.example.com"],
                ["User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"],
                ["Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
                ["Accept-Language", "en-US,en;q=0.5"],
                ["Content-Type", "application/x-www-form-urlencoded"],
                ["Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl"],
                ["Cookie", "sessionid=9f8e7d6c5b4a; theme=dark"],
                ["X-Request-Id", "5f3c9a1e-8b7d-4c2a-9e6f-1a2b3c4d5e6f"],
            ],
            "cookies": "sessionid=9f8e7d6c5b4a; theme=dark",
            "data": "username=bob&password=hunter2&remember=on",
            "env": {"REMOTE_ADDR": "203.0.113.7", "SERVER_NAME": "app.example.com", "SERVER_PORT": "443"},
        },
        "exception": {"values": [{
            "type": "PaymentError",
            "value": "charge declined for card 4111 1111 1111 1111",
            "module": "app.payments",
            "mechanism": {"type": "django", "handled": false},
            "stacktrace": {"frames": frames},
        }]},
        "breadcrumbs": {"values": breadcrumbs},
        "contexts": {
            "os": {"name": "Linux", "version": "6.1.0", "kernel_version": "6.1.0-18-amd64"},
            "runtime": {"name": "CPython", "version": "3.12.2"},
            "trace": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "op": "http.server"},
        },
        "extra": {"db_password": "s3cr3t", "attempt": 3, "sys.argv": ["manage.py", "runserver"]},
        "sdk": {"name": "sentry.python.django", "version": "1.45.0", "packages": [{"name": "pypi:sentry-sdk", "version": "1.45.0"}]},
    });
    // The card is in the crashing frame's variables and the token in a breadcrumb URL.
    if let Some(frame) = event.pointer_mut("/exception/values/0/stacktrace/frames/7/vars") {
        frame["card"] = json!("4111-1111-1111-1111");
    }
    if let Some(url) = event.pointer_mut("/breadcrumbs/values/6/data/url") {
        *url = json!("https://api.partner.example/v2/charge?token=tok_9a8b7c6d&amount=100");
    }
    event
}

#[test]
fn realistic_sentry_event_is_scrubbed_with_the_rest_intact() {
    let original = realistic_event();
    let (value, count) = scrubbed(original.clone());
    let at = |pointer: &str| value.pointer(pointer).cloned().unwrap_or(Value::Null);
    assert_eq!(at("/request/headers/5/1"), json!("[Filtered]"));
    assert_eq!(at("/request/headers/6/1"), json!("[Filtered]"));
    assert_eq!(
        at("/request/cookies"),
        json!("sessionid=[Filtered]; theme=dark")
    );
    assert_eq!(
        at("/request/data"),
        json!("username=bob&password=[Filtered]&remember=on")
    );
    assert_eq!(at("/request/env/REMOTE_ADDR"), json!("[Filtered]"));
    assert_eq!(at("/user/ip_address"), json!("[Filtered]"));
    assert_eq!(at("/tags/1/1"), json!("[Filtered]"));
    assert_eq!(
        at("/exception/values/0/stacktrace/frames/7/vars/card"),
        json!("[Filtered]")
    );
    assert_eq!(
        at("/exception/values/0/value"),
        json!("charge declined for card [Filtered]")
    );
    assert_eq!(
        at("/breadcrumbs/values/6/data/url"),
        json!("https://api.partner.example/v2/charge?token=[Filtered]&amount=100")
    );
    assert_eq!(at("/extra/db_password"), json!("[Filtered]"));
    assert_eq!(count, 11);

    // Everything else is as it was: put the originals back and compare.
    let mut restored = value.clone();
    for pointer in [
        "/request/headers/5/1",
        "/request/headers/6/1",
        "/request/cookies",
        "/request/data",
        "/request/env/REMOTE_ADDR",
        "/user/ip_address",
        "/tags/1/1",
        "/exception/values/0/stacktrace/frames/7/vars/card",
        "/exception/values/0/value",
        "/breadcrumbs/values/6/data/url",
        "/extra/db_password",
    ] {
        if let (Some(slot), Some(old)) = (restored.pointer_mut(pointer), original.pointer(pointer))
        {
            *slot = old.clone();
        }
    }
    assert_eq!(restored, original);

    let mut again = value.clone();
    assert_eq!(scrub_value(&mut again, &Settings::default()), 0);
    assert_eq!(again, value);
}

fn event_with(payload: Value) -> ErrorEvent {
    ErrorEvent {
        payload,
        ..ErrorEvent::blank()
    }
}

#[test]
fn event_normalized_fields_are_scrubbed() {
    let mut event = event_with(json!({"extra": {"api_key": "k"}}));
    event.message = Some("login failed: password=hunter2".into());
    event.transaction = Some("/reset?token=abc".into());
    event.exceptions = vec![Exception {
        ty: "ValueError".into(),
        value: Some("bad card 4111111111111111".into()),
        ..Exception::default()
    }];
    event.tags = BTreeMap::from([
        ("X-Auth-Token".to_string(), "abc".to_string()),
        ("url".to_string(), "https://u:p@h/x".to_string()),
        ("region".to_string(), "eu".to_string()),
    ]);
    assert_eq!(scrub_event(&mut event, &Settings::default()), 6);
    assert_eq!(event.payload, json!({"extra": {"api_key": "[Filtered]"}}));
    assert_eq!(
        event.message.as_deref(),
        Some("login failed: password=[Filtered]")
    );
    assert_eq!(
        event.transaction.as_deref(),
        Some("/reset?token=[Filtered]")
    );
    assert_eq!(
        event.exceptions[0].value.as_deref(),
        Some("bad card [Filtered]")
    );
    assert_eq!(event.tags["X-Auth-Token"], "[Filtered]");
    assert_eq!(event.tags["url"], "https://u:[Filtered]@h/x");
    assert_eq!(event.tags["region"], "eu");
    let before = event.clone();
    assert_eq!(scrub_event(&mut event, &Settings::default()), 0);
    assert_eq!(event, before);
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let mut value = json!("password=x");
    for _ in 0..100_000 {
        value = Value::Array(vec![value]);
    }
    assert_eq!(scrub_value(&mut value, &Settings::default()), 1);
    // Taken apart iteratively: dropping it recursively would overflow the test's stack.
    let mut next = Some(value);
    while let Some(Value::Array(mut items)) = next {
        next = items.pop();
    }
}

/// Inputs built to make a scanner or regex go quadratic; each must finish in about linear
/// time (printed, not asserted: timing depends on the machine).
#[test]
fn adversarial_megabyte_strings() {
    let settings = Settings::default();
    for (name, unit) in [
        ("pairs", "password=password="),
        ("colons", "a:"),
        ("quotes", "token: \"\\"),
        ("digits", "4111 "),
        ("schemes", "Bearer "),
        ("urls", "https://a:"),
        ("pem", "-----BEGIN PRIVATE KEY-----"),
        ("keys", "abcdefghij"),
        ("filtered", "[Filtered]"),
    ] {
        let text = unit.repeat(1_000_000 / unit.len());
        let started = std::time::Instant::now();
        let once = scrub_text(&text, &settings).into_owned();
        let elapsed = started.elapsed();
        assert_eq!(scrub_text(&once, &settings), once, "{name}");
        println!("adversarial {name}: 1 MB in {elapsed:?}");
    }
}

/// Prints how long one realistic event takes (no assertion: timing depends on the
/// machine). `cargo test --release --lib scrub::tests::timing -- --nocapture`.
#[test]
fn timing() {
    let event = realistic_event();
    let size = serde_json::to_string(&event).map_or(0, |s| s.len());
    // Each copy is scrubbed right after it is made, as a parsed event is, so it is in
    // the cache; only the scrub is timed. SCRUB_TIMING_ROUNDS lengthens the run for a
    // profiler.
    let rounds: u32 = std::env::var("SCRUB_TIMING_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    let settings = Settings::default();
    let mut elapsed = std::time::Duration::ZERO;
    let mut replaced = 0;
    for _ in 0..rounds {
        let mut copy = event.clone();
        let started = std::time::Instant::now();
        replaced += scrub_value(&mut copy, &settings);
        elapsed += started.elapsed();
    }
    let per_event = elapsed.as_secs_f64() * 1e6 / f64::from(rounds.max(1));
    println!("scrub: {size} byte event, {per_event:.1} µs/event, {replaced} values replaced");
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// Key names: secret, ordinary, and arbitrary.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "password",
            "Authorization",
            "db_password",
            "GITHUB_TOKEN",
            "session",
            "ip_address",
            "REMOTE_ADDR",
            "user",
            "request",
            "env",
            "headers",
            "name",
            "data",
            "vars",
            "[Filtered]",
        ])
        .prop_map(String::from),
        "[a-zA-Z_\\-. ]{0,10}",
        // Any characters, for the non-ASCII normalization.
        "\\PC{0,8}",
    ]
}

/// Text made of secrets, pieces of secrets, separators and ordinary words.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "4111 1111 1111 1111",
            "4111111111111111",
            "5555-5555-5555-4444",
            "1700000000003",
            "Bearer ",
            "bearer",
            "Basic ",
            "dXNlcjpwYXNz",
            "abcdef123456",
            "-----BEGIN RSA PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
            "PRIVATE KEY-----",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_1234567890abcdefghijABCDEFGHIJ123456",
            "xoxb-1234567890-abc",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "eyJhbGciOiJIUzI1NiJ9",
            ".",
            "https://",
            "user:pw@host",
            "@",
            "[Filtered]",
            "[",
            "]",
            "password",
            "token",
            "auth",
            "session",
            "=",
            ":",
            "=>",
            "::",
            "&",
            ";",
            " ",
            "\"",
            "'",
            "\\",
            "{",
            "}",
            "\n",
            "hello",
            "é€",
            "42",
            // Fragments that only form a secret together, or next to another one.
            "4111",
            " 1111",
            "-1111",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "xoxp-",
            "sk_test_",
            "eyJ",
            "_",
            "-",
            "/",
            "://",
            ":pw@h",
            "?",
            "#",
            "-----",
            "BEGIN ",
            "END ",
            "Filtered",
            "\t",
        ])
        .prop_map(String::from),
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![4_111_111_111_111_111_u64, 1_700_000_000_003, 42])
            .prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner.clone()), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            prop::collection::vec((key(), inner), 1..4).prop_map(|pairs| {
                Value::Array(
                    pairs
                        .into_iter()
                        .map(|(k, v)| Value::Array(vec![Value::String(k), v]))
                        .collect(),
                )
            }),
        ]
    })
}

/// Default settings, or ones with extra and safe names (`filtered` included, the name
/// most likely to break idempotence) and IP addresses kept or not.
fn settings() -> impl Strategy<Value = Settings> {
    (any::<bool>(), any::<bool>()).prop_map(|(extra, keep_ip)| Settings {
        extra_keys: if extra {
            vec!["name".into(), "filtered".into(), "[Filtered]".into()]
        } else {
            Vec::new()
        },
        safe_keys: if extra {
            vec!["session".into()]
        } else {
            Vec::new()
        },
        keep_ip_addresses: keep_ip,
        ..Settings::default()
    })
}

proptest! {
    // No regression files: this module writes only under src/scrub/.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn scrub_value_is_idempotent(mut value in json_value(), settings in settings()) {
        scrub_value(&mut value, &settings);
        let once = value.clone();
        prop_assert_eq!(scrub_value(&mut value, &settings), 0);
        prop_assert_eq!(value, once);
    }

    #[test]
    fn scrub_text_is_idempotent(text in text(), settings in settings()) {
        let once = scrub_text(&text, &settings).into_owned();
        let twice = scrub_text(&once, &settings);
        prop_assert_eq!(&*twice, &once);
        prop_assert!(matches!(twice, Cow::Borrowed(_)));
    }

    #[test]
    fn scrub_text_is_idempotent_on_any_string(text in any::<String>()) {
        let once = scrub_text(&text, &Settings::default()).into_owned();
        prop_assert_eq!(&*scrub_text(&once, &Settings::default()), &once);
    }

    /// Ingestion stores every payload member not named in `changed_members` as it was
    /// received: a member scrubbing changed but did not name would be stored unscrubbed.
    #[test]
    fn changed_members_name_exactly_the_members_that_changed(
        members in prop::collection::btree_map(
            prop::sample::select(vec!["user", "request", "password", "extra", "note", "tags"]),
            json_value(),
            0..6,
        ),
        settings in settings(),
    ) {
        let payload = Value::Object(
            members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        );
        let mut event = ErrorEvent::blank();
        event.payload = payload.clone();
        let scrubbed = scrub_event_parts(&mut event, &settings);
        let (Value::Object(before), Value::Object(after)) = (&payload, &event.payload) else {
            unreachable!("an object stays an object");
        };
        let mut changed: Vec<&str> = before
            .iter()
            .filter(|(key, value)| after.get(*key) != Some(*value))
            .map(|(key, _)| key.as_str())
            .collect();
        let mut named: Vec<&str> = scrubbed.changed_members.iter().map(String::as_str).collect();
        changed.sort_unstable();
        named.sort_unstable();
        prop_assert_eq!(named, changed);
    }

    #[test]
    fn strings_in_payloads_are_scrubbed_like_text(text in text()) {
        let expected = scrub_text(&text, &Settings::default()).into_owned();
        let (value, _) = scrubbed(json!({"note": text}));
        prop_assert_eq!(value, json!({"note": expected}));
    }
}
