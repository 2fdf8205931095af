//! MSAL Python's token cache file (`SerializableTokenCache.serialize()`), read and
//! written without loss.
//!
//! The file is one JSON object whose sections (`AccessToken`, `RefreshToken`, `IdToken`,
//! `Account`, `AppMetadata`) map a cache key to an entry. [`MsalCacheDocument`] holds
//! typed entries, and keeps verbatim whatever it does not model: unknown top-level
//! sections, entries that do not fit the typed model (an app-only token's
//! `home_account_id: null`, another SDK's oddities), unknown fields (in `extra`), and for
//! entries read from a file their field order and the exact JSON of each field whose
//! value did not change (a time written as a number stays a number, an absent `target`
//! stays absent). [`MsalCacheDocument::to_string_pretty`] writes like MSAL Python's
//! `json.dumps(cache, indent=4)` (non-ASCII as `\uXXXX`), so a file MSAL wrote comes
//! back byte for byte.
//!
//! The same field mapping is the JSON form of the entries in every backend
//! ([`MsalEntity::to_msal_map`] / [`MsalEntity::from_msal_map`]).

use std::io;
use std::str::FromStr;

use indexmap::IndexMap;
use serde_json::ser::{Formatter, PrettyFormatter};
use serde_json::{Map, Value};

use super::{
    access_token_key, account_key, app_metadata_key, id_token_key, refresh_token_key,
    AccessTokenEntry, AccountEntry, AppMetadataEntry, IdTokenEntry, RefreshTokenEntry,
    ACCESS_TOKEN, ID_TOKEN, REFRESH_TOKEN,
};
use crate::env::UnixTime;
use crate::error::StoreError;
use crate::secret::{AccessToken, IdTokenString, RefreshToken};

/// How a field of an MSAL entry is written, and what its absence means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// Must be exactly this string (`credential_type`).
    Const(&'static str),
    /// A required string.
    Str,
    /// A string; absent or `null` reads as the default.
    StrOr(&'static str),
    /// An optional string; absent or `null` is `None`.
    OptStr,
    /// A required time: seconds since the epoch as a decimal string (a number is read too).
    Time,
    /// An optional time.
    OptTime,
}

/// One known field of an MSAL entry, in the order MSAL Python writes them.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: FieldKind,
}

const fn field(name: &'static str, kind: FieldKind) -> FieldSpec {
    FieldSpec { name, kind }
}

fn time_of(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The meaning of a field's JSON (`None` in the outer option: not valid for the kind).
/// Two JSON forms with the same meaning are interchangeable.
fn meaning(kind: FieldKind, v: Option<&Value>) -> Option<Option<Value>> {
    let v = v.filter(|v| !v.is_null());
    match kind {
        FieldKind::Const(c) => match v {
            Some(Value::String(s)) if s == c => Some(Some(Value::String(s.clone()))),
            _ => None,
        },
        FieldKind::Str => match v {
            Some(Value::String(s)) => Some(Some(Value::String(s.clone()))),
            _ => None,
        },
        FieldKind::StrOr(default) => match v {
            None => Some(Some(Value::String(default.into()))),
            Some(Value::String(s)) => Some(Some(Value::String(s.clone()))),
            _ => None,
        },
        FieldKind::OptStr => match v {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(Value::String(s.clone()))),
            _ => None,
        },
        FieldKind::Time => Some(Some(Value::from(time_of(v?)?))),
        FieldKind::OptTime => match v {
            None => Some(None),
            Some(v) => Some(Some(Value::from(time_of(v)?))),
        },
    }
}

/// Whether `v` is valid JSON for a field of `kind` (what [`meaning`] accepts), without
/// building its meaning.
fn valid(kind: FieldKind, v: Option<&Value>) -> bool {
    let v = v.filter(|v| !v.is_null());
    match kind {
        FieldKind::Const(c) => v.and_then(Value::as_str) == Some(c),
        FieldKind::Str => v.is_some_and(Value::is_string),
        FieldKind::StrOr(_) | FieldKind::OptStr => v.is_none_or(Value::is_string),
        FieldKind::Time => v.and_then(time_of).is_some(),
        FieldKind::OptTime => v.is_none_or(|v| time_of(v).is_some()),
    }
}

/// An entry's known fields, validated, read in place from its JSON for building the
/// typed entry (each value is copied once, into the entry).
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    specs: &'static [FieldSpec],
}

impl Fields<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }
    fn str(&self, name: &str) -> String {
        self.opt_str(name).unwrap_or_default()
    }
    fn opt_str(&self, name: &str) -> Option<String> {
        match self.get(name) {
            Some(v) => v.as_str().map(str::to_string),
            None => self.specs.iter().find_map(|s| match s.kind {
                FieldKind::StrOr(default) if s.name == name => Some(default.to_string()),
                _ => None,
            }),
        }
    }
    fn time(&self, name: &str) -> UnixTime {
        self.opt_time(name).unwrap_or_default()
    }
    fn opt_time(&self, name: &str) -> Option<UnixTime> {
        self.get(name).and_then(time_of)
    }
}

fn time_json(t: UnixTime) -> Value {
    // MSAL's schema has times as decimal strings.
    Value::String(t.to_string())
}

/// An entry kind of the unified cache, with its MSAL JSON mapping.
pub trait MsalEntity: Clone + Sized {
    /// The top-level section of the MSAL file.
    const SECTION: &'static str;
    /// The known fields, in MSAL Python's order. Other fields live in `extra`.
    const FIELDS: &'static [FieldSpec];

    fn cache_key(&self) -> String;
    fn extra(&self) -> &Map<String, Value>;
    /// The canonical JSON of a known field (`None`: absent).
    fn field_json(&self, name: &str) -> Option<Value>;
    #[doc(hidden)]
    fn from_fields(f: &Fields<'_>, extra: Map<String, Value>) -> Self;

    /// The entry as MSAL writes it: known fields in MSAL's order, then `extra`.
    fn to_msal_map(&self) -> Map<String, Value> {
        merge_into_original(self, None)
    }

    /// Reads an entry; `None` if a known field is missing or has the wrong type.
    fn from_msal_map(m: &Map<String, Value>) -> Option<Self> {
        if !Self::FIELDS
            .iter()
            .all(|spec| valid(spec.kind, m.get(spec.name)))
        {
            return None;
        }
        let extra = m
            .iter()
            .filter(|(k, _)| !Self::FIELDS.iter().any(|s| s.name == k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let fields = Fields {
            map: m,
            specs: Self::FIELDS,
        };
        Some(Self::from_fields(&fields, extra))
    }
}

/// Serializes `e`, reusing `original` (the JSON it was read from) for field order and
/// for the exact JSON of every field whose meaning did not change.
fn merge_into_original<T: MsalEntity>(
    e: &T,
    original: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let spec_of = |name: &str| T::FIELDS.iter().find(|s| s.name == name);
    let mut out = Map::new();
    if let Some(orig) = original {
        for (k, o) in orig {
            if let Some(spec) = spec_of(k) {
                let now = e.field_json(spec.name);
                let same = meaning(spec.kind, Some(o));
                if same.is_some() && same == meaning(spec.kind, now.as_ref()) {
                    out.insert(k.clone(), o.clone());
                } else if let Some(now) = now {
                    out.insert(k.clone(), now);
                }
            } else if let Some(v) = e.extra().get(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for spec in T::FIELDS {
        if out.contains_key(spec.name) || original.is_some_and(|o| o.contains_key(spec.name)) {
            continue;
        }
        if let Some(now) = e.field_json(spec.name) {
            // A field the original did not have stays absent while it means the default.
            let absent_means_this = original.is_some()
                && meaning(spec.kind, None).is_some()
                && meaning(spec.kind, None) == meaning(spec.kind, Some(&now));
            if !absent_means_this {
                out.insert(spec.name.to_string(), now);
            }
        }
    }
    for (k, v) in e.extra() {
        if !out.contains_key(k) && spec_of(k).is_none() {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

impl MsalEntity for AccessTokenEntry {
    const SECTION: &'static str = "AccessToken";
    const FIELDS: &'static [FieldSpec] = &[
        field("credential_type", FieldKind::Const(ACCESS_TOKEN)),
        field("secret", FieldKind::Str),
        field("home_account_id", FieldKind::Str),
        field("environment", FieldKind::Str),
        field("client_id", FieldKind::Str),
        field("target", FieldKind::StrOr("")),
        field("realm", FieldKind::StrOr("")),
        field("token_type", FieldKind::StrOr("Bearer")),
        field("cached_at", FieldKind::Time),
        field("expires_on", FieldKind::Time),
        field("extended_expires_on", FieldKind::OptTime),
        field("refresh_on", FieldKind::OptTime),
    ];

    fn cache_key(&self) -> String {
        access_token_key(self)
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn field_json(&self, name: &str) -> Option<Value> {
        Some(match name {
            "credential_type" => ACCESS_TOKEN.into(),
            "secret" => self.secret.secret().as_str().into(),
            "home_account_id" => self.home_account_id.as_str().into(),
            "environment" => self.environment.as_str().into(),
            "client_id" => self.client_id.as_str().into(),
            "target" => self.target.as_str().into(),
            "realm" => self.realm.as_str().into(),
            "token_type" => self.token_type.as_str().into(),
            "cached_at" => time_json(self.cached_at),
            "expires_on" => time_json(self.expires_on),
            "extended_expires_on" => time_json(self.extended_expires_on?),
            "refresh_on" => time_json(self.refresh_on?),
            _ => return None,
        })
    }
    fn from_fields(f: &Fields<'_>, extra: Map<String, Value>) -> Self {
        AccessTokenEntry {
            home_account_id: f.str("home_account_id"),
            environment: f.str("environment"),
            client_id: f.str("client_id"),
            realm: f.str("realm"),
            target: f.str("target"),
            secret: AccessToken::new(f.str("secret")),
            token_type: f.str("token_type"),
            cached_at: f.time("cached_at"),
            expires_on: f.time("expires_on"),
            extended_expires_on: f.opt_time("extended_expires_on"),
            refresh_on: f.opt_time("refresh_on"),
            extra,
        }
    }
}

impl MsalEntity for RefreshTokenEntry {
    const SECTION: &'static str = "RefreshToken";
    const FIELDS: &'static [FieldSpec] = &[
        field("credential_type", FieldKind::Const(REFRESH_TOKEN)),
        field("secret", FieldKind::Str),
        field("home_account_id", FieldKind::Str),
        field("environment", FieldKind::Str),
        field("client_id", FieldKind::Str),
        field("target", FieldKind::StrOr("")),
        field("last_modification_time", FieldKind::OptTime),
        field("family_id", FieldKind::OptStr),
    ];

    fn cache_key(&self) -> String {
        refresh_token_key(self)
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn field_json(&self, name: &str) -> Option<Value> {
        Some(match name {
            "credential_type" => REFRESH_TOKEN.into(),
            "secret" => self.secret.secret().as_str().into(),
            "home_account_id" => self.home_account_id.as_str().into(),
            "environment" => self.environment.as_str().into(),
            "client_id" => self.client_id.as_str().into(),
            "target" => self.target.as_str().into(),
            "last_modification_time" => time_json(self.last_modification_time?),
            "family_id" => self.family_id.as_deref()?.into(),
            _ => return None,
        })
    }
    fn from_fields(f: &Fields<'_>, extra: Map<String, Value>) -> Self {
        RefreshTokenEntry {
            home_account_id: f.str("home_account_id"),
            environment: f.str("environment"),
            client_id: f.str("client_id"),
            target: f.str("target"),
            secret: RefreshToken::new(f.str("secret")),
            family_id: f.opt_str("family_id"),
            last_modification_time: f.opt_time("last_modification_time"),
            extra,
        }
    }
}

impl MsalEntity for IdTokenEntry {
    const SECTION: &'static str = "IdToken";
    const FIELDS: &'static [FieldSpec] = &[
        field("credential_type", FieldKind::Const(ID_TOKEN)),
        field("secret", FieldKind::Str),
        field("home_account_id", FieldKind::Str),
        field("environment", FieldKind::Str),
        field("realm", FieldKind::StrOr("")),
        field("client_id", FieldKind::Str),
    ];

    fn cache_key(&self) -> String {
        id_token_key(self)
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn field_json(&self, name: &str) -> Option<Value> {
        Some(match name {
            "credential_type" => ID_TOKEN.into(),
            "secret" => self.secret.secret().into(),
            "home_account_id" => self.home_account_id.as_str().into(),
            "environment" => self.environment.as_str().into(),
            "realm" => self.realm.as_str().into(),
            "client_id" => self.client_id.as_str().into(),
            _ => return None,
        })
    }
    fn from_fields(f: &Fields<'_>, extra: Map<String, Value>) -> Self {
        IdTokenEntry {
            home_account_id: f.str("home_account_id"),
            environment: f.str("environment"),
            realm: f.str("realm"),
            client_id: f.str("client_id"),
            secret: IdTokenString::new(f.str("secret")),
            extra,
        }
    }
}

impl MsalEntity for AccountEntry {
    const SECTION: &'static str = "Account";
    const FIELDS: &'static [FieldSpec] = &[
        field("home_account_id", FieldKind::Str),
        field("environment", FieldKind::Str),
        field("realm", FieldKind::StrOr("")),
        field("local_account_id", FieldKind::StrOr("")),
        field("username", FieldKind::StrOr("")),
        field("authority_type", FieldKind::Str),
        field("account_source", FieldKind::OptStr),
        field("name", FieldKind::OptStr),
    ];

    fn cache_key(&self) -> String {
        account_key(self)
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn field_json(&self, name: &str) -> Option<Value> {
        Some(match name {
            "home_account_id" => self.home_account_id.as_str().into(),
            "environment" => self.environment.as_str().into(),
            "realm" => self.realm.as_str().into(),
            "local_account_id" => self.local_account_id.as_str().into(),
            "username" => self.username.as_str().into(),
            "authority_type" => self.authority_type.as_str().into(),
            "account_source" => self.account_source.as_deref()?.into(),
            "name" => self.name.as_deref()?.into(),
            _ => return None,
        })
    }
    fn from_fields(f: &Fields<'_>, extra: Map<String, Value>) -> Self {
        AccountEntry {
            home_account_id: f.str("home_account_id"),
            environment: f.str("environment"),
            realm: f.str("realm"),
            local_account_id: f.str("local_account_id"),
            username: f.str("username"),
            authority_type: f.str("authority_type"),
            account_source: f.opt_str("account_source"),
            name: f.opt_str("name"),
            extra,
        }
    }
}

impl MsalEntity for AppMetadataEntry {
    const SECTION: &'static str = "AppMetadata";
    const FIELDS: &'static [FieldSpec] = &[
        field("client_id", FieldKind::Str),
        field("environment", FieldKind::Str),
        field("family_id", FieldKind::OptStr),
    ];

    fn cache_key(&self) -> String {
        app_metadata_key(self)
    }
    fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    fn field_json(&self, name: &str) -> Option<Value> {
        Some(match name {
            "client_id" => self.client_id.as_str().into(),
            "environment" => self.environment.as_str().into(),
            "family_id" => self.family_id.as_deref()?.into(),
            _ => return None,
        })
    }
    fn from_fields(f: &Fields<'_>, extra: Map<String, Value>) -> Self {
        AppMetadataEntry {
            client_id: f.str("client_id"),
            environment: f.str("environment"),
            family_id: f.opt_str("family_id"),
            extra,
        }
    }
}

#[derive(Clone)]
enum Slot<T> {
    /// A typed entry, with the JSON object it was read from (`None` when written here).
    Typed {
        entry: T,
        original: Option<Map<String, Value>>,
    },
    /// An entry that does not fit the typed model, kept verbatim.
    Raw(Value),
}

/// One section of the cache: key → entry, in file order. Lookups by key are O(1).
#[derive(Clone)]
pub struct Section<T> {
    entries: IndexMap<String, Slot<T>>,
}

impl<T> Default for Section<T> {
    fn default() -> Self {
        Section {
            entries: IndexMap::new(),
        }
    }
}

/// Shows counts only: raw entries may hold secrets.
impl<T> std::fmt::Debug for Section<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("typed", &self.len())
            .field("raw", &self.raw_len())
            .finish()
    }
}

impl<T> Section<T> {
    /// How many typed entries.
    pub fn len(&self) -> usize {
        self.entries
            .values()
            .filter(|s| matches!(s, Slot::Typed { .. }))
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many entries are kept verbatim because they do not fit the typed model.
    pub fn raw_len(&self) -> usize {
        self.entries.len() - self.len()
    }
}

impl<T: MsalEntity> Section<T> {
    fn parse(v: Value) -> Result<Self, StoreError> {
        let Value::Object(m) = v else {
            return Err(StoreError::Format(format!(
                "the MSAL token cache's {} section is not a JSON object",
                T::SECTION
            )));
        };
        let entries = m
            .into_iter()
            .map(|(key, v)| {
                let slot = match v {
                    Value::Object(obj) => match T::from_msal_map(&obj) {
                        // Keep it typed only if writing it back gives the same JSON.
                        Some(entry) if merge_into_original(&entry, Some(&obj)) == obj => {
                            Slot::Typed {
                                entry,
                                original: Some(obj),
                            }
                        }
                        _ => Slot::Raw(Value::Object(obj)),
                    },
                    v => Slot::Raw(v),
                };
                (key, slot)
            })
            .collect();
        Ok(Section { entries })
    }

    fn to_value(&self) -> Value {
        Value::Object(
            self.entries
                .iter()
                .map(|(k, slot)| {
                    let v = match slot {
                        Slot::Typed { entry, original } => {
                            Value::Object(merge_into_original(entry, original.as_ref()))
                        }
                        Slot::Raw(v) => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&T> {
        match self.entries.get(key)? {
            Slot::Typed { entry, .. } => Some(entry),
            Slot::Raw(_) => None,
        }
    }

    /// The typed entries with their keys, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.entries.iter().filter_map(|(k, s)| match s {
            Slot::Typed { entry, .. } => Some((k.as_str(), entry)),
            Slot::Raw(_) => None,
        })
    }

    /// MSAL's `modify(type, entry, entry)`: puts the entry under its key, replacing
    /// whatever was there (in place, keeping the position). Returns the key.
    pub fn insert(&mut self, entry: T) -> String {
        let key = entry.cache_key();
        self.entries.insert(
            key.clone(),
            Slot::Typed {
                entry,
                original: None,
            },
        );
        key
    }

    /// MSAL's `modify(type, old, new_fields)`: changes a typed entry in place, keeping
    /// the fields and order it was read with. Returns whether the key was there.
    pub fn update(&mut self, key: &str, change: impl FnOnce(&mut T)) -> bool {
        match self.entries.get_mut(key) {
            Some(Slot::Typed { entry, .. }) => {
                change(entry);
                true
            }
            _ => false,
        }
    }

    /// Removes the entry under `key` (typed or raw).
    pub fn remove(&mut self, key: &str) -> bool {
        self.entries.shift_remove(key).is_some()
    }

    /// Keeps the typed entries for which `keep` is true (raw ones stay). Returns how
    /// many were removed.
    pub fn retain_typed(&mut self, mut keep: impl FnMut(&str, &T) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|k, s| match s {
            Slot::Typed { entry, .. } => keep(k, entry),
            Slot::Raw(_) => true,
        });
        before - self.entries.len()
    }

    /// Keeps the raw entries for which `keep` is true (typed ones stay).
    pub fn retain_raw(&mut self, mut keep: impl FnMut(&str, &Value) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|k, s| match s {
            Slot::Raw(v) => keep(k, v),
            Slot::Typed { .. } => true,
        });
        before - self.entries.len()
    }
}

/// MSAL Python's token cache file as typed sections, plus everything else verbatim.
/// Parse with `str::parse` / [`FromStr`]; write with [`Self::to_string_pretty`].
#[derive(Clone, Debug, Default)]
pub struct MsalCacheDocument {
    pub access_tokens: Section<AccessTokenEntry>,
    pub refresh_tokens: Section<RefreshTokenEntry>,
    pub id_tokens: Section<IdTokenEntry>,
    pub accounts: Section<AccountEntry>,
    pub app_metadata: Section<AppMetadataEntry>,
    /// Top-level sections this version does not know, verbatim (not shown by Debug).
    unknown: UnknownSections,
    /// The top-level keys in file order.
    order: Vec<String>,
}

#[derive(Clone, Default)]
struct UnknownSections(Map<String, Value>);

impl std::fmt::Debug for UnknownSections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// The order MSAL Python's `add()` creates the sections in (used for new files).
const SECTION_ORDER: [&str; 5] = [
    "AccessToken",
    "Account",
    "IdToken",
    "RefreshToken",
    "AppMetadata",
];

impl FromStr for MsalCacheDocument {
    type Err = StoreError;

    /// Reads an MSAL token cache. Empty text is an empty cache (as MSAL's `deserialize`).
    fn from_str(s: &str) -> Result<Self, StoreError> {
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        // serde_json's syntax errors name a line and column, never the content.
        let v: Value = serde_json::from_str(s).map_err(|e| {
            StoreError::Format(format!("the MSAL token cache is not valid JSON: {e}"))
        })?;
        let Value::Object(top) = v else {
            return Err(StoreError::Format(
                "the MSAL token cache is not a JSON object".into(),
            ));
        };
        let mut doc = Self::default();
        for (name, v) in top {
            doc.order.push(name.clone());
            match name.as_str() {
                "AccessToken" => doc.access_tokens = Section::parse(v)?,
                "RefreshToken" => doc.refresh_tokens = Section::parse(v)?,
                "IdToken" => doc.id_tokens = Section::parse(v)?,
                "Account" => doc.accounts = Section::parse(v)?,
                "AppMetadata" => doc.app_metadata = Section::parse(v)?,
                _ => {
                    doc.unknown.0.insert(name, v);
                }
            }
        }
        Ok(doc)
    }
}

impl MsalCacheDocument {
    fn section_value(&self, name: &str) -> Option<Value> {
        Some(match name {
            "AccessToken" => self.access_tokens.to_value(),
            "RefreshToken" => self.refresh_tokens.to_value(),
            "IdToken" => self.id_tokens.to_value(),
            "Account" => self.accounts.to_value(),
            "AppMetadata" => self.app_metadata.to_value(),
            _ => self.unknown.0.get(name)?.clone(),
        })
    }

    fn section_is_empty(&self, name: &str) -> bool {
        match name {
            "AccessToken" => self.access_tokens.is_empty(),
            "RefreshToken" => self.refresh_tokens.is_empty(),
            "IdToken" => self.id_tokens.is_empty(),
            "Account" => self.accounts.is_empty(),
            "AppMetadata" => self.app_metadata.is_empty(),
            _ => true,
        }
    }

    /// The whole cache as JSON: sections in the order they were read, then new
    /// non-empty ones in MSAL's order.
    pub fn to_value(&self) -> Value {
        let mut top = Map::new();
        for name in &self.order {
            if let Some(v) = self.section_value(name) {
                top.insert(name.clone(), v);
            }
        }
        for name in SECTION_ORDER {
            if !top.contains_key(name) && !self.section_is_empty(name) {
                if let Some(v) = self.section_value(name) {
                    top.insert(name.to_string(), v);
                }
            }
        }
        Value::Object(top)
    }

    /// The cache as MSAL Python writes it: `json.dumps(cache, indent=4)`.
    pub fn to_string_pretty(&self) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(
            &mut out,
            PythonFormatter(PrettyFormatter::with_indent(b"    ")),
        );
        // Writing a Value into a Vec cannot fail, and the formatter writes only ASCII.
        if serde::Serialize::serialize(&self.to_value(), &mut ser).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The top-level sections this version does not know, verbatim.
    pub fn unknown_sections(&self) -> &Map<String, Value> {
        &self.unknown.0
    }
}

/// serde_json's pretty printer, plus Python's `ensure_ascii`: every character outside
/// printable ASCII is written as `\uXXXX` (UTF-16 units, lower-case hex).
struct PythonFormatter<'a>(PrettyFormatter<'a>);

impl Formatter for PythonFormatter<'_> {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSAL: &str = include_str!("testdata/msal_python_cache.json");
    const FOREIGN: &str = include_str!("testdata/msal_python_cache_foreign.json");

    #[test]
    fn valid_accepts_exactly_what_meaning_gives_a_meaning() {
        let kinds = [
            FieldKind::Const("AccessToken"),
            FieldKind::Str,
            FieldKind::StrOr("MSSTS"),
            FieldKind::OptStr,
            FieldKind::Time,
            FieldKind::OptTime,
        ];
        let values = [
            None,
            Some(Value::Null),
            Some(Value::from("AccessToken")),
            Some(Value::from("x")),
            Some(Value::from("")),
            Some(Value::from(" 1700000000 ")),
            Some(Value::from("17e8")),
            Some(Value::from(1_700_000_000)),
            Some(Value::from(-1)),
            Some(Value::from(1.5)),
            Some(Value::from(u64::MAX)),
            Some(Value::Bool(true)),
            Some(serde_json::json!(["x"])),
            Some(serde_json::json!({"x": 1})),
        ];
        for kind in kinds {
            for v in &values {
                assert_eq!(
                    valid(kind, v.as_ref()),
                    meaning(kind, v.as_ref()).is_some(),
                    "{kind:?} {v:?}"
                );
            }
        }
    }

    fn doc(s: &str) -> MsalCacheDocument {
        s.parse().unwrap()
    }

    #[test]
    fn msal_python_output_round_trips_byte_for_byte() {
        assert_eq!(doc(MSAL).to_string_pretty(), MSAL);
        assert_eq!(doc(FOREIGN).to_string_pretty(), FOREIGN);
    }

    #[test]
    fn msal_entries_are_typed_and_their_keys_match_our_key_functions() {
        let d = doc(MSAL);
        // The app-only token has home_account_id null: kept verbatim, not typed.
        assert_eq!((d.access_tokens.len(), d.access_tokens.raw_len()), (7, 1));
        assert_eq!((d.refresh_tokens.len(), d.refresh_tokens.raw_len()), (5, 0));
        assert_eq!((d.id_tokens.len(), d.id_tokens.raw_len()), (5, 0));
        assert_eq!((d.accounts.len(), d.accounts.raw_len()), (4, 0));
        assert_eq!((d.app_metadata.len(), d.app_metadata.raw_len()), (4, 0));
        for (k, e) in d.access_tokens.iter() {
            assert_eq!(access_token_key(e), k);
        }
        for (k, e) in d.refresh_tokens.iter() {
            assert_eq!(refresh_token_key(e), k);
        }
        for (k, e) in d.id_tokens.iter() {
            assert_eq!(id_token_key(e), k);
        }
        for (k, e) in d.accounts.iter() {
            assert_eq!(account_key(e), k);
        }
        for (k, e) in d.app_metadata.iter() {
            assert_eq!(app_metadata_key(e), k);
        }
    }

    #[test]
    fn typed_values_are_read_correctly() {
        let d = doc(MSAL);
        let alice = "a11ce000-0000-4000-8000-00000000a11c.11111111-aaaa-4aaa-aaaa-111111111111";
        let (_, at) = d
            .access_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "at-alice-cli-graph-secret")
            .unwrap();
        assert_eq!(at.home_account_id, alice);
        assert_eq!(at.target, "User.Read email openid profile");
        assert_eq!(
            (at.cached_at, at.expires_on),
            (1_700_000_000, 1_700_004_493)
        );
        assert_eq!(
            (at.extended_expires_on, at.refresh_on),
            (Some(1_700_004_493), Some(1_700_002_246))
        );
        let (_, at) = d
            .access_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "at-bob-own-mail-secret")
            .unwrap();
        assert_eq!(at.extra.get("key_id"), Some(&Value::from("kid-0001")));
        let (k, at) = d
            .access_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "at-bob-own-fmi-secret")
            .unwrap();
        assert!(k.contains("-atext-"));
        assert!(super::super::ext_cache_key(at).is_some());
        let rts: Vec<_> = d
            .refresh_tokens
            .iter()
            .filter(|(_, e)| e.home_account_id == alice)
            .collect();
        assert_eq!(rts.len(), 3);
        assert!(rts.iter().all(|(_, e)| e.family_id.as_deref() == Some("1")));
        let (_, bob_rt) = d
            .refresh_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "rt-bob-own-secret-2")
            .unwrap();
        assert_eq!(bob_rt.last_modification_time, Some(1_700_000_041));
        assert_eq!(bob_rt.family_id, None);
        let bob = d
            .accounts
            .iter()
            .find(|(_, a)| a.home_account_id.starts_with("b0b"))
            .unwrap()
            .1;
        assert_eq!(bob.username, "zo\u{eb}@contoso.example");
        assert_eq!(bob.account_source.as_deref(), Some("authorization_code"));
        let adfs = d
            .accounts
            .iter()
            .find(|(_, a)| a.realm == "adfs")
            .unwrap()
            .1;
        assert_eq!(
            (adfs.authority_type.as_str(), adfs.home_account_id.as_str()),
            ("ADFS", "adfs-sub-1")
        );
    }

    #[test]
    fn entries_written_here_look_exactly_like_msal_pythons() {
        // Re-insert every typed entry as new (no memory of the original JSON): the
        // canonical form must be what MSAL Python wrote.
        let d = doc(MSAL);
        let mut fresh = MsalCacheDocument::default();
        for (_, e) in d.access_tokens.iter() {
            fresh.access_tokens.insert(e.clone());
        }
        for (_, e) in d.accounts.iter() {
            fresh.accounts.insert(e.clone());
        }
        for (_, e) in d.id_tokens.iter() {
            fresh.id_tokens.insert(e.clone());
        }
        for (_, e) in d.refresh_tokens.iter() {
            fresh.refresh_tokens.insert(e.clone());
        }
        for (_, e) in d.app_metadata.iter() {
            fresh.app_metadata.insert(e.clone());
        }
        let mut expected = d.to_value();
        // The one raw entry (app-only token) is not typed, so it is not copied.
        expected["AccessToken"]
            .as_object_mut()
            .unwrap()
            .retain(|_, v| !v["home_account_id"].is_null());
        assert_eq!(
            serde_json::to_string_pretty(&fresh.to_value()).unwrap(),
            serde_json::to_string_pretty(&expected).unwrap()
        );
    }

    #[test]
    fn foreign_fields_and_forms_are_kept() {
        let d = doc(FOREIGN);
        assert_eq!(
            d.unknown_sections().keys().collect::<Vec<_>>(),
            ["FutureSection"]
        );
        let (_, at) = d
            .access_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "at-alice-cli-graph-secret")
            .unwrap();
        assert_eq!(
            at.cached_at, 1_700_000_000,
            "a time written as a number is read"
        );
        assert_eq!(
            at.extra["future_field"],
            serde_json::json!({"nested": true})
        );
        let (_, rt) = d
            .refresh_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "rt-alice-ps-secret")
            .unwrap();
        assert_eq!(rt.target, "", "an absent target reads as empty");
        assert_eq!(
            d.id_tokens.raw_len(),
            1,
            "an entry that is not an object is kept verbatim"
        );
        let out: Value = serde_json::from_str(&d.to_string_pretty()).unwrap();
        let at_json = out["AccessToken"]
            .as_object()
            .unwrap()
            .values()
            .find(|v| v["secret"] == "at-alice-cli-graph-secret")
            .unwrap();
        assert_eq!(
            at_json["cached_at"],
            Value::from(1_700_000_000),
            "still a number"
        );
    }

    #[test]
    fn changes_are_written_in_place_keeping_the_rest() {
        let mut d = doc(FOREIGN);
        let key = d
            .refresh_tokens
            .iter()
            .find(|(_, e)| e.secret.secret() == "rt-alice-ps-secret")
            .unwrap()
            .0
            .to_string();
        assert!(d.refresh_tokens.update(&key, |rt| {
            rt.secret = RefreshToken::new("rotated".into());
            rt.last_modification_time = Some(1_800_000_000);
        }));
        let out: Value = serde_json::from_str(&d.to_string_pretty()).unwrap();
        let rt = out["RefreshToken"][&key].as_object().unwrap();
        assert_eq!(rt["secret"], "rotated");
        assert_eq!(rt["last_modification_time"], "1800000000");
        assert!(!rt.contains_key("target"), "still absent");
        assert_eq!(
            rt.keys().collect::<Vec<_>>()[..2],
            ["credential_type", "secret"]
        );
        assert_eq!(
            out["FutureSection"],
            serde_json::json!({"k": {"anything": [1, 2, {"x": null}]}})
        );
        assert!(d.refresh_tokens.remove(&key));
        assert!(!d.refresh_tokens.update(&key, |_| {}));
    }

    #[test]
    fn python_escaping() {
        let mut d = MsalCacheDocument::default();
        d.app_metadata.insert(AppMetadataEntry {
            client_id: "c\u{7f}\u{e9}\u{1f600}\n\"\\".into(),
            environment: "e".into(),
            family_id: None,
            extra: Map::new(),
        });
        let s = d.to_string_pretty();
        assert!(s.is_ascii());
        assert!(
            s.contains(r#""client_id": "c\u007f\u00e9\ud83d\ude00\n\"\\","#),
            "{s}"
        );
        assert_eq!(MsalCacheDocument::default().to_string_pretty(), "{}");
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        for (bad, says) in [
            ("{not json", "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            (
                r#"{"AccessToken": []}"#,
                "AccessToken section is not a JSON object",
            ),
        ] {
            let err = bad.parse::<MsalCacheDocument>().unwrap_err();
            assert!(
                matches!(err, StoreError::Format(_)) && err.to_string().contains(says),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            "  \n"
                .parse::<MsalCacheDocument>()
                .unwrap()
                .to_string_pretty(),
            "{}"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", doc(FOREIGN));
        for secret in ["at-app-only-secret", "at-alice", "rt-alice", "eyJ"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
