//! The flags of the settings table (`ckp_server::settings`), made into clap arguments from the table itself: one
//! flag per setting that declares one, its help text, value name, environment variables and default taken from the
//! declaration. `ckp serve`, `ckp worker` and `ckp config` take them all; `ckp run` those marked `run`, `ckp migrate`
//! those marked `migrate`, `ckp validate` those marked `validate`.
//! clap only collects the text; the loader parses and validates it with the other sources.

use std::collections::BTreeMap;

use ckp_connectors::settings::{Group, Json, Spec};
use ckp_server::settings::{FlagValue, ServeConfig};

/// Every flag: `ckp serve`, `ckp worker`, `ckp config`.
pub const ALL: u8 = 0;
/// The flags of `ckp run`.
pub const RUN: u8 = 1;
/// The flags of `ckp migrate`.
pub const MIGRATE: u8 = 2;
/// The flags of `ckp validate`.
pub const VALIDATE: u8 = 3;

/// The settings flags given on the command line, in the order clap saw them per flag; `SET` picks the flags a
/// command takes ([`ALL`], [`RUN`], [`MIGRATE`], [`VALIDATE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingFlags<const SET: u8>(pub Vec<FlagValue>);

impl<const SET: u8> SettingFlags<SET> {
    fn flagged() -> impl Iterator<Item = (&'static Spec, &'static str)> {
        let taken = |s: &Spec| match SET {
            RUN => s.run,
            MIGRATE => s.migrate,
            VALIDATE => s.validate,
            _ => true,
        };
        ServeConfig::SPECS.iter().filter(move |s| taken(s)).filter_map(|s| s.flag.map(|f| (s, f)))
    }
}

impl<const SET: u8> clap::FromArgMatches for SettingFlags<SET> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut values = Vec::new();
        for (spec, flag) in Self::flagged() {
            if let Some(texts) = matches.get_many::<String>(flag) {
                values.extend(texts.map(|text| FlagValue { key: spec.key, flag, text: text.clone() }));
            }
        }
        Ok(SettingFlags(values))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<const SET: u8> clap::Args for SettingFlags<SET> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let mut defaults = BTreeMap::new();
        ServeConfig::default().visit("", &mut |key, _, value| {
            defaults.insert(key.to_owned(), value);
        });
        Self::flagged().fold(cmd, |cmd, (spec, flag)| {
            let mut help = spec.text();
            if !spec.env.is_empty() {
                help.push_str(&format!(" [env: {}]", spec.env.join(", ")));
            }
            match defaults.get(spec.key) {
                Some(Json::Null) | None => {}
                Some(_) if spec.key == "db_pool_size" => help.push_str(" [default: 2 x cores, 4 to 16]"),
                Some(Json::String(s)) => help.push_str(&format!(" [default: {s}]")),
                Some(Json::Array(a)) if a.is_empty() => {}
                Some(Json::Object(o)) if o.is_empty() => {}
                Some(v) => help.push_str(&format!(" [default: {v}]")),
            }
            let action = match spec.flag_entry {
                Some(_) => clap::ArgAction::Append,
                None => clap::ArgAction::Set,
            };
            cmd.arg(clap::Arg::new(flag).long(flag).value_name(spec.value_name).help(help).action(action))
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}
