//! Credentials in `Debug` output, one rule for the whole crate: a key, token or password never reaches a log line
//! or a panic message through `{:?}`, and whether it is set still shows. [`Masked`] holds a credential and prints
//! `***`; [`debug_masking!`] writes the `Debug` of a settings struct from its field list, the credential fields
//! shown through [`Conceal`] (`Some(***)`, a header's name without its value). Nothing here decides what is a
//! credential: each struct names its own.

use std::fmt;

/// A credential that prints as `***` in `Debug`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Masked<T>(pub T);

impl<T> fmt::Debug for Masked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How a credential field shows in `Debug`: that it is there, never what it is.
pub trait Conceal {
    /// What `Debug` prints in place of the field.
    fn concealed(&self) -> impl fmt::Debug + '_;
}

impl<T> Conceal for Option<T> {
    fn concealed(&self) -> impl fmt::Debug + '_ {
        self.as_ref().map(|_| Masked(()))
    }
}

/// Headers: their names, not their values.
impl Conceal for Vec<(String, String)> {
    fn concealed(&self) -> impl fmt::Debug + '_ {
        self.iter().map(|(name, _)| (name.as_str(), Masked(()))).collect::<Vec<_>>()
    }
}

/// `debug_masking!(Type { shown, fields } masking { credentials })` writes `Type`'s `Debug`: the shown fields as
/// they are, the credentials concealed. Every field must be listed (the impl takes the struct apart), so a field
/// added later is a compile error until it is said to be shown or masked.
macro_rules! debug_masking {
    ($ty:ident { $($field:ident),* $(,)? } masking { $($secret:ident),* $(,)? }) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let $ty { $($field,)* $($secret,)* } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), $field))*
                    $(.field(stringify!($secret), &$crate::masked::Conceal::concealed($secret)))*
                    .finish()
            }
        }
    };
}
pub(crate) use debug_masking;

#[cfg(test)]
mod tests {
    use crate::llm::LlmConfig;
    use crate::secrets::{AzureSettings, GrantKey, SealKey, VaultSettings, azure, vault};

    #[test]
    fn credentials_show_as_set_or_not_never_as_values() {
        let mut llm = LlmConfig::new("http://gateway", "m1");
        let text = format!("{llm:?}");
        assert!(text.contains("api_key: None") && text.contains("base_url: \"http://gateway\""), "{text}");
        llm.api_key = Some("sk-l1ve-key".into());
        llm.headers = vec![("api-key".into(), "h3ader-s3cret".into())];
        let text = format!("{llm:?}");
        assert!(text.contains("api_key: Some(***)") && text.contains("(\"api-key\", ***)"), "{text}");
        assert!(!text.contains("sk-l1ve-key") && !text.contains("h3ader-s3cret"), "{text}");

        let key = SealKey::parse(&"ab".repeat(32)).expect("key");
        assert_eq!(format!("{key:?} {:?}", GrantKey::new(b"s3cret")), "SealKey(***) GrantKey(***)");

        let azure = AzureSettings {
            vault_url: Some("http://vault".into()),
            tenant_id: Some("t".into()),
            client_id: Some("c".into()),
            client_secret: Some("azure-s3cret".into()),
            ..AzureSettings::default()
        };
        let vault = VaultSettings {
            role_id: Some("role".into()),
            secret_id: Some("approle-s3cret".into()),
            ..VaultSettings::default()
        };
        let http = reqwest::Client::new();
        let providers = format!(
            "{:?} {:?}",
            azure::AzureProvider::new(azure, http.clone()).expect("azure"),
            vault::VaultProvider::new(vault, http).expect("vault")
        );
        assert!(providers.contains("client_secret: Some(***)"), "{providers}");
        assert!(!providers.contains("azure-s3cret") && !providers.contains("approle-s3cret"), "{providers}");
    }
}
