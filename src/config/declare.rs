//! The machinery behind the settings table in `settings.rs`. One
//! declaration per serve setting becomes everything a setting needs: its
//! field in [`Settings`](super::Settings) with its default, its key in
//! [`Layer`](super::Layer) (the file key, and the `SHADOWDIFF_<KEY>`
//! variable), how layers overlay and resolve, its flag in
//! [`ServeFlags`](super::ServeFlags) with the help text, and its entry in
//! `Layer::DECLARED`, which the README's settings table is checked against.
//! Hand-written copies of these, one per place, drifted apart; a table
//! cannot.

/// A setting's default, as its help text and the README show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultDoc {
    /// There is none: the setting must be given.
    Required,
    /// Written as a flag would give it; the default is parsed from this text,
    /// so what is shown is what is used.
    Value(&'static str),
    /// Worked out at start; the words say how.
    Described(&'static str),
    /// Unset unless given.
    None,
}

/// One setting with one value, as its documentation shows it.
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    /// The file key; also names the variable and the flag.
    pub key: &'static str,
    /// The flag's placeholder in `--help`.
    pub value_name: &'static str,
    pub default: DefaultDoc,
    /// The help text, a line per element.
    pub doc: &'static [&'static str],
    /// Read as text from the environment even when it looks like a number.
    pub text: bool,
}

impl Declared {
    /// The command-line flag, such as `--max-body-bytes`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The environment variable, such as `SHADOWDIFF_MAX_BODY_BYTES`.
    pub fn env(&self) -> String {
        format!("{}{}", super::ENV_PREFIX, self.key.to_ascii_uppercase())
    }
}

/// A flag's help: the declaration's text, then its default and file key.
pub fn help_text(doc: &[&str], default: DefaultDoc, key: &str) -> String {
    let mut text = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    if let DefaultDoc::Value(shown) | DefaultDoc::Described(shown) = default {
        text.push_str(&format!(" [default: {shown}]"));
    }
    text.push_str(&format!(" [key: {key}]"));
    text
}

/// Generates the settings' types from the table; see `settings.rs` for the
/// form of an entry. A scalar entry reads
/// `key: LayerType, "VALUE_NAME", DEFAULT => field: SettingsType, via conversion;`
/// where DEFAULT is `default("text")` (parsed as a flag would be),
/// `computed(function, "words")`, `none` (an `Option` left unset) or
/// `serving("text")` (unset in `Settings::new`, which tests use, and this
/// value when a layer resolves, which `serve` does). `via` turns the layer's
/// value into the field's (identity when left out).
macro_rules! declare_settings {
    (@via) => { ::std::convert::identity };
    (@via $conv:expr) => { $conv };

    (@default $key:ident, $L:ty, [$($conv:expr)?], default($text:expr)) => {
        ($crate::config::declare::declare_settings!(@via $($conv)?))(
            $crate::config::value::parse_default::<$L>(stringify!($key), $text),
        )
    };
    (@default $key:ident, $L:ty, [$($conv:expr)?], computed($f:expr, $what:literal)) => {
        ($f)()
    };
    (@default $key:ident, $L:ty, [$($conv:expr)?], none) => { None };
    (@default $key:ident, $L:ty, [$($conv:expr)?], serving($text:expr)) => { None };

    (@doc default($text:expr)) => { $crate::config::declare::DefaultDoc::Value($text) };
    (@doc computed($f:expr, $what:literal)) => {
        $crate::config::declare::DefaultDoc::Described($what)
    };
    (@doc none) => { $crate::config::declare::DefaultDoc::None };
    (@doc serving($text:expr)) => { $crate::config::declare::DefaultDoc::Value($text) };

    (@resolve $s:ident . $field:ident = $value:expr;
        $key:ident, $L:ty, [$($conv:expr)?], serving($text:expr)) => {
        $s.$field = ($crate::config::declare::declare_settings!(@via $($conv)?))(
            $value.unwrap_or_else(|| {
                $crate::config::value::parse_default::<$L>(stringify!($key), $text)
            }),
        );
    };
    (@resolve $s:ident . $field:ident = $value:expr;
        $key:ident, $L:ty, [$($conv:expr)?], $($default:tt)*) => {
        if let Some(v) = $value {
            $s.$field = ($crate::config::declare::declare_settings!(@via $($conv)?))(v);
        }
    };

    (
        required {
            $( $(#[doc = $rdoc:literal])+ $rkey:ident : $RL:ty, $rvn:literal; )*
        }
        scalar {
            $( $(#[doc = $doc:literal])+
               $key:ident : $L:ty, $vn:literal, $dkind:ident $(($($darg:tt)*))?
               => $field:ident : $S:ty $(, via $conv:expr)?; )*
        }
        groups {
            $( $(#[doc = $gdoc:literal])+ $group:ident : $G:ident {
                $( $(#[doc = $ndoc:literal])+
                   $nkey:ident : $NL:ty, $nvn:literal, default($ntext:expr)
                   => $inner:ident $(, via $nconv:expr)?; )*
            } )*
        }
        file_only {
            $( $(#[doc = $fdoc:literal])+ $ffield:ident : $F:ty, $fkey:literal; )*
        }
    ) => {
        /// Every serve setting, valid by construction.
        #[derive(Clone, Debug)]
        pub struct Settings {
            $( $(#[doc = $rdoc])+ pub $rkey: $RL, )*
            $( $(#[doc = $doc])+ pub $field: $S, )*
            $( $(#[doc = $gdoc])+ pub $group: $G, )*
            $( $(#[doc = $fdoc])+ pub $ffield: $F, )*
        }

        impl Settings {
            /// Settings with every default, for the required ones given.
            pub fn new($($rkey: $RL),*) -> Self {
                Settings {
                    $( $rkey, )*
                    $( $field: $crate::config::declare::declare_settings!(
                        @default $key, $L, [$($conv)?], $dkind $(($($darg)*))?
                    ), )*
                    $( $group: $G::default(), )*
                    $( $ffield: <$F>::default(), )*
                }
            }
        }

        $(
            impl Default for $G {
                /// The defaults the settings table declares.
                fn default() -> Self {
                    $G {
                        $( $inner: ($crate::config::declare::declare_settings!(@via $($nconv)?))(
                            $crate::config::value::parse_default::<$NL>(stringify!($nkey), $ntext),
                        ), )*
                    }
                }
            }
        )*

        /// Serve settings as one source gives them: every key optional.
        #[derive(Clone, Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Layer {
            $( pub $rkey: Option<$RL>, )*
            $( pub $key: Option<$L>, )*
            $( $( pub $nkey: Option<$NL>, )* )*
            $( #[serde(rename = $fkey)] pub $ffield: Option<$F>, )*
        }

        impl Layer {
            /// The keys a file or the environment may set with one value.
            pub const KEYS: &'static [&'static str] = &[
                $( stringify!($rkey), )*
                $( stringify!($key), )*
                $( $( stringify!($nkey), )* )*
            ];

            /// Every setting with one value, as the documentation shows it.
            pub const DECLARED: &'static [$crate::config::declare::Declared] = &[
                $( $crate::config::declare::Declared {
                    key: stringify!($rkey),
                    value_name: $rvn,
                    default: $crate::config::declare::DefaultDoc::Required,
                    doc: &[$($rdoc),+],
                    text: <$RL as $crate::config::value::SettingValue>::TEXT,
                }, )*
                $( $crate::config::declare::Declared {
                    key: stringify!($key),
                    value_name: $vn,
                    default: $crate::config::declare::declare_settings!(
                        @doc $dkind $(($($darg)*))?
                    ),
                    doc: &[$($doc),+],
                    text: <$L as $crate::config::value::SettingValue>::TEXT,
                }, )*
                $( $( $crate::config::declare::Declared {
                    key: stringify!($nkey),
                    value_name: $nvn,
                    default: $crate::config::declare::DefaultDoc::Value($ntext),
                    doc: &[$($ndoc),+],
                    text: <$NL as $crate::config::value::SettingValue>::TEXT,
                }, )* )*
            ];

            /// The tables only the file gives.
            pub const FILE_TABLES: &'static [&'static str] = &[$($fkey),*];

            /// This layer with every key that `over` sets replaced by `over`'s value.
            pub fn overlay(self, over: Layer) -> Layer {
                Layer {
                    $( $rkey: over.$rkey.or(self.$rkey), )*
                    $( $key: over.$key.or(self.$key), )*
                    $( $( $nkey: over.$nkey.or(self.$nkey), )* )*
                    $( $ffield: over.$ffield.or(self.$ffield), )*
                }
            }

            /// Every declared setting from this layer, its default where unset.
            pub(super) fn declared_settings(self) -> Result<Settings, $crate::config::ConfigError> {
                $( let $rkey = self.$rkey.ok_or($crate::config::ConfigError::Missing {
                    key: stringify!($rkey),
                })?; )*
                let mut s = Settings::new($($rkey),*);
                $( $crate::config::declare::declare_settings!(
                    @resolve s.$field = self.$key; $key, $L, [$($conv)?], $dkind $(($($darg)*))?
                ); )*
                $( $(
                    if let Some(v) = self.$nkey {
                        s.$group.$inner =
                            ($crate::config::declare::declare_settings!(@via $($nconv)?))(v);
                    }
                )* )*
                $( s.$ffield = self.$ffield.unwrap_or_default(); )*
                Ok(s)
            }
        }

        /// Every serve setting with one value, as a flag; what no flag gives
        /// is left to the environment and the config file.
        #[derive(Clone, Debug, clap::Args)]
        pub struct ServeFlags {
            $(
                #[arg(
                    long,
                    value_name = $rvn,
                    allow_negative_numbers = true,
                    value_parser = <$RL as $crate::config::value::SettingValue>::value_parser(),
                    help = $crate::config::declare::help_text(
                        &[$($rdoc),+],
                        $crate::config::declare::DefaultDoc::Required,
                        stringify!($rkey),
                    ),
                )]
                pub $rkey: Option<$RL>,
            )*
            $(
                #[arg(
                    long,
                    value_name = $vn,
                    allow_negative_numbers = true,
                    value_parser = <$L as $crate::config::value::SettingValue>::value_parser(),
                    help = $crate::config::declare::help_text(
                        &[$($doc),+],
                        $crate::config::declare::declare_settings!(@doc $dkind $(($($darg)*))?),
                        stringify!($key),
                    ),
                )]
                pub $key: Option<$L>,
            )*
            $( $(
                #[arg(
                    long,
                    value_name = $nvn,
                    allow_negative_numbers = true,
                    value_parser = <$NL as $crate::config::value::SettingValue>::value_parser(),
                    help = $crate::config::declare::help_text(
                        &[$($ndoc),+],
                        $crate::config::declare::DefaultDoc::Value($ntext),
                        stringify!($nkey),
                    ),
                )]
                pub $nkey: Option<$NL>,
            )* )*
        }

        impl ServeFlags {
            /// The settings given as flags, as the top configuration layer.
            pub fn into_layer(self) -> Layer {
                Layer {
                    $( $rkey: self.$rkey, )*
                    $( $key: self.$key, )*
                    $( $( $nkey: self.$nkey, )* )*
                    ..Layer::default()
                }
            }
        }
    };
}

pub(crate) use declare_settings;
