//! `#[derive(ShmEnum)]`: the variants of a fieldless enum with an integer `repr`, for
//! `shmstore::value::EnumField`.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::ext::IdentExt;
use syn::{Data, DeriveInput, Fields};

use crate::Errors;

/// The integer `repr`s an `EnumField` can store: fixed width, and a discriminant that fits the
/// `i128` of `ShmEnum::VARIANTS`.
const SUPPORTED: [&str; 8] = ["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"];

pub(crate) fn expand(input: &DeriveInput) -> Result<TokenStream2, syn::Error> {
    let mut errors = Errors::default();
    let ident = &input.ident;
    let enum_name = ident.unraw().to_string();

    let data = match &input.data {
        Data::Enum(data) => data,
        Data::Struct(s) => {
            return Err(syn::Error::new(
                s.struct_token.span,
                "`ShmEnum` is for fieldless enums; a struct derives `ShmType` instead",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "`ShmEnum` is for fieldless enums; a union cannot live in shared memory",
            ))
        }
    };

    let repr = parse_repr(input, &mut errors);
    if !input.generics.params.is_empty() {
        errors.push_error(syn::Error::new_spanned(
            &input.generics,
            "an enum deriving `ShmEnum` cannot be generic: its variants and their values are \
             recorded once, in every region that stores it; remove the parameters",
        ));
    }
    if data.variants.is_empty() {
        errors.push(
            ident.span(),
            format!(
                "`{enum_name}` has no variants: a field of this enum could hold no valid value; \
                 add its variants"
            ),
        );
    }
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.push_error(syn::Error::new_spanned(
                &variant.fields,
                format!(
                    "variant `{}` carries data: a `ShmEnum` stores only a discriminant, so every \
                     variant must be fieldless; move the data into fields of the struct that \
                     holds the `EnumField`, or use a `#[repr(C)]` struct with a tag field",
                    variant.ident.unraw()
                ),
            ));
        }
    }
    errors.finish()?;
    let repr = repr.expect("a missing repr is reported above");

    let names: Vec<String> = data
        .variants
        .iter()
        .map(|v| v.ident.unraw().to_string())
        .collect();
    let variants: Vec<_> = data.variants.iter().map(|v| &v.ident).collect();
    Ok(quote! {
        impl ::shmstore::ShmEnum for #ident {
            type Repr = #repr;
            const NAME: &'static str = #enum_name;
            const VARIANTS: &'static [(&'static str, i128)] =
                &[#((#names, #ident::#variants as #repr as i128)),*];

            fn to_repr(&self) -> #repr {
                match self {
                    #(#ident::#variants => #ident::#variants as #repr,)*
                }
            }

            fn from_repr(raw: #repr) -> ::core::option::Option<Self> {
                #(
                    if raw == #ident::#variants as #repr {
                        return ::core::option::Option::Some(#ident::#variants);
                    }
                )*
                ::core::option::Option::None
            }
        }
    })
}

/// The enum's integer `repr` type, or `None` after reporting why there is none that fits.
fn parse_repr(input: &DeriveInput, errors: &mut Errors) -> Option<syn::Ident> {
    let mut found: Option<syn::Ident> = None;
    let mut seen_any = false;
    for attr in &input.attrs {
        if attr.path().get_ident().is_none_or(|i| i.unraw() != "repr") {
            continue;
        }
        seen_any = true;
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(word) = meta.path.get_ident().cloned() else {
                return Err(meta.error("unknown `repr`"));
            };
            let text = word.unraw().to_string();
            if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                content.parse::<TokenStream2>()?;
            }
            match text.as_str() {
                t if SUPPORTED.contains(&t) => found = Some(word),
                "usize" | "isize" => errors.push(
                    word.span(),
                    format!(
                        "`#[repr({text})]` has a different size in 32- and 64-bit processes, \
                         which can share a region; use `#[repr({}32)]` or `#[repr({}64)]`",
                        &text[..1],
                        &text[..1]
                    ),
                ),
                "u128" | "i128" => errors.push(
                    word.span(),
                    format!(
                        "`#[repr({text})]`: a region records enum values as at most 64-bit; use \
                         `#[repr({}64)]`",
                        &text[..1]
                    ),
                ),
                "C" => errors.push(
                    word.span(),
                    "`#[repr(C)]` gives the enum the size of a C `int`, which is the platform's \
                     choice; name the width: `#[repr(u8)]`, `#[repr(u32)]`, `#[repr(i32)]`…",
                ),
                _ => {}
            }
            Ok(())
        });
        if let Err(error) = parsed {
            errors.push_error(error);
        }
    }
    if found.is_none() && !seen_any {
        errors.push(
            input.ident.span(),
            format!(
                "`{}` has no `#[repr(...)]`: the width of its discriminant is the compiler's \
                 choice; add one of {}, such as `#[repr(u8)]`",
                input.ident.unraw(),
                SUPPORTED.map(|r| format!("`{r}`")).join(", ")
            ),
        );
    } else if found.is_none() && errors.0.is_none() {
        errors.push(
            Span::call_site(),
            "`ShmEnum` needs an integer `repr`: add `#[repr(u8)]`, `#[repr(u16)]`, \
             `#[repr(u32)]`, `#[repr(u64)]` or their signed forms",
        );
    }
    found
}
