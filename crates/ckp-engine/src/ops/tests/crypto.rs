//! encrypt and decrypt.

use serde_json::{Map, Value, json};

use super::{FakeEnv, err, run_in};
use crate::ops::OpError;

fn call(action: &str, params: Value, env: &mut FakeEnv) -> Result<Value, OpError> {
    run_in(action, params, &mut Map::new(), env).map(|o| o.value.unwrap_or(Value::Null))
}

#[test]
fn round_trip_with_the_same_secret() {
    let mut env = FakeEnv::new().with_secret("K", "correct horse");
    let sealed = call("encrypt", json!({"source": "card 4111", "key_reference": "K"}), &mut env).expect("encrypt");
    let text = sealed.as_str().expect("base64 text");
    assert!(!text.contains("4111"));
    let opened = call("decrypt", json!({"source": text, "key_reference": "K"}), &mut env).expect("decrypt");
    assert_eq!(opened, json!("card 4111"));
    let sealed_json = call("encrypt", json!({"value": {"a": 1}, "key_reference": "K"}), &mut env).expect("json");
    let opened = call("decrypt", json!({"value": sealed_json, "key_reference": "{{secrets.K}}"}), &mut env);
    assert_eq!(opened, Ok(json!(r#"{"a":1}"#)), "non-strings are encrypted as compact JSON");
}

#[test]
fn nonces_come_from_the_environment() {
    let params = json!({"source": "same", "key_reference": "K", "algorithm": "AES-256-GCM"});
    let mut env = FakeEnv::new().with_secret("K", "s");
    let a = call("encrypt", params.clone(), &mut env).expect("a");
    let b = call("encrypt", params.clone(), &mut env).expect("b");
    assert_ne!(a, b, "a fresh id per call gives a fresh nonce");
    let replayed = call("encrypt", params, &mut FakeEnv::new().with_secret("K", "s")).expect("replay");
    assert_eq!(a, replayed, "the same recorded id reproduces the ciphertext");
}

#[test]
fn wrong_key_or_tampering_fails() {
    let mut env = FakeEnv::new().with_secret("K", "one").with_secret("L", "two");
    let sealed = call("encrypt", json!({"source": "secret", "key_reference": "K"}), &mut env).expect("encrypt");
    let e = call("decrypt", json!({"source": sealed, "key_reference": "L"}), &mut env).expect_err("wrong key");
    assert!(e.message.contains("decryption failed"), "{}", e.message);
    let mut text = sealed.as_str().expect("text").to_owned();
    let flipped = if text.get(20..21) == Some("A") { "B" } else { "A" };
    text.replace_range(20..21, flipped);
    let e = call("decrypt", json!({"source": text, "key_reference": "K"}), &mut env).expect_err("tampered");
    assert!(e.message.contains("decryption failed"), "{}", e.message);
    let e = call("decrypt", json!({"source": "AAAA", "key_reference": "K"}), &mut env).expect_err("short");
    assert!(e.message.contains("too short"), "{}", e.message);
    let e = call("decrypt", json!({"source": "%%%", "key_reference": "K"}), &mut env).expect_err("not base64");
    assert!(e.message.contains("not base64"), "{}", e.message);
    let e = call("decrypt", json!({"source": 5, "key_reference": "K"}), &mut env).expect_err("number");
    assert!(e.message.contains("base64 text produced by encrypt"), "{}", e.message);
}

#[test]
fn missing_secret_and_bad_parameters() {
    let e = err("encrypt", json!({"source": "x", "key_reference": "NOPE"}));
    assert!(e.contains("secret NOPE not found"), "{e}");
    assert!(err("decrypt", json!({"source": "x"})).contains("missing `key_reference`"));
    assert!(
        err("encrypt", json!({"source": "x", "key_reference": "K", "algorithm": "des"})).contains("only aes-256-gcm")
    );
}

#[test]
fn errors_never_contain_the_secret() {
    let mut env = FakeEnv::new().with_secret("K", "hunter2-super-secret");
    let sealed = call("encrypt", json!({"source": "x", "key_reference": "K"}), &mut env).expect("encrypt");
    let mut env = FakeEnv::new().with_secret("K", "other-secret-value");
    let e = call("decrypt", json!({"source": sealed, "key_reference": "K"}), &mut env).expect_err("wrong key");
    assert!(!e.message.contains("secret-value") && !e.message.contains("hunter2"), "{}", e.message);
}
