//! `MsalCacheDocument`: any text parses or fails with an error (never a panic); what
//! parses writes back as text that parses to the same cache, and writing is a fixed
//! point (our own output comes back byte for byte). The store built on a parsed
//! document answers every lookup.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tessera_core::cache::memory::MemoryStore;
use tessera_core::cache::msal_json::MsalCacheDocument;
use tessera_core::cache::{CredentialQuery, TokenStore};
use tessera_fuzz::{object, structured, Json, Key, Num, Str};

#[derive(Debug, Arbitrary)]
enum FieldValue {
    Str(Str),
    Time(Num),
    TimeString(Num),
    Json(Json),
}

impl FieldValue {
    fn to_value(&self) -> Value {
        match self {
            FieldValue::Str(s) => Value::String(s.0.clone()),
            FieldValue::Time(n) => n.to_value(),
            FieldValue::TimeString(n) => Value::String(n.to_value().to_string()),
            FieldValue::Json(j) => j.to_value(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Entry {
    key: Str,
    fields: Vec<(Key, FieldValue)>,
    /// Some entries are not objects at all.
    not_an_object: Option<Json>,
}

#[derive(Debug, Arbitrary)]
struct Doc {
    sections: Vec<(Str, Vec<Entry>)>,
    /// A non-object section (`"AccessToken": [1]`).
    odd_section: Option<(Str, Json)>,
    extra: Vec<(Key, Json)>,
}

impl Doc {
    fn to_text(&self) -> String {
        let mut top: Map<String, Value> = object(&self.extra);
        for (name, entries) in &self.sections {
            let mut section = Map::new();
            for e in entries {
                let v = match &e.not_an_object {
                    Some(j) => j.to_value(),
                    None => Value::Object(
                        e.fields
                            .iter()
                            .map(|(k, v)| (k.0.clone(), v.to_value()))
                            .collect(),
                    ),
                };
                section.insert(e.key.0.clone(), v);
            }
            top.insert(name.0.clone(), Value::Object(section));
        }
        if let Some((name, v)) = &self.odd_section {
            top.insert(name.0.clone(), v.to_value());
        }
        Value::Object(top).to_string()
    }
}

fn check(text: &str) {
    let Ok(doc) = text.parse::<MsalCacheDocument>() else {
        return;
    };
    let written = doc.to_string_pretty();
    assert!(written.is_ascii(), "MSAL Python writes ASCII only");
    let again: MsalCacheDocument = written
        .parse()
        .unwrap_or_else(|e| panic!("our own output does not parse: {e}\n{written}"));
    let (before, after) = (doc.to_value(), again.to_value());
    if before != after {
        let diff: Vec<String> = before
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| after.get(k.as_str()) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k:?}: {v} became {:?}",
                    after.get(k.as_str()).map(|a| a.to_string())
                )
            })
            .collect();
        panic!("the written cache means something else: {diff:?}");
    }
    assert_eq!(
        again.to_string_pretty(),
        written,
        "writing is not a fixed point"
    );

    // The store on this document answers every lookup without panicking.
    let store = MemoryStore::from_document(doc);
    let accounts = store.accounts().expect("accounts");
    for a in accounts.iter().take(4) {
        let envs = vec![
            a.environment.clone(),
            "login.microsoftonline.com".to_string(),
        ];
        for client in ["04b07795-8ddb-461a-bbee-02f9e1bf7b46", ""] {
            let q = CredentialQuery {
                home_account_id: &a.home_account_id,
                environments: &envs,
                client_id: client,
                realm: None,
            };
            let _ = store.access_tokens(&q);
            let _ = store.refresh_tokens(&q, Some("1"));
            let _ = store.id_token(&q);
        }
        let _ = store.app_metadata(&envs, "04b07795-8ddb-461a-bbee-02f9e1bf7b46");
    }
    if let Some(a) = accounts.first() {
        let _ = store.remove_account(&a.home_account_id, std::slice::from_ref(&a.environment));
        let after: MsalCacheDocument = store
            .to_msal_json()
            .parse()
            .expect("the store's document parses");
        let _ = after;
    }
}

fuzz_target!(|data: &[u8]| {
    match structured(data) {
        None => check(&String::from_utf8_lossy(data)),
        Some(rest) => {
            if let Ok(doc) = Doc::arbitrary(&mut Unstructured::new(rest)) {
                check(&doc.to_text());
            }
        }
    }
});
