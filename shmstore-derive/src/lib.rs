//! `#[derive(ShmType)]` for the `shmstore` crate. Use it through `shmstore::ShmType`; this crate is
//! an implementation detail and its generated code names only `::shmstore` paths.
//!
//! # Analysis
//!
//! The derive proves that a struct may live in shared memory in two stages.
//!
//! **Syntax** (here, with spans on the offending token): the item is a struct (not an enum or
//! union) with at least one field; its `repr` is `C` (optionally with `align(N)` or
//! `packed`/`packed(N)`) or `transparent`; generic parameters appear only with
//! `repr(transparent)`; no field's type is spelled as something that can never be shared (a
//! reference, pointer, heap type, `bool`, `char`, `usize`, `Option`, atomic, cell, tuple …).
//! These checks exist for their messages: they tell the user *why* and *what to use instead*.
//!
//! **Semantics** (in the generated code, checked by the compiler): every field type implements
//! `ShmType` (the layout refers to `<F as ShmType>::LAYOUT`), and, for every pair of adjacent
//! fields and for the end of the struct, a constant computed from `offset_of!` and `size_of`
//! proves that no padding byte exists. Because these read the compiler's own numbers, a type
//! alias, an associated-type projection or a macro-produced type cannot hide padding, and
//! `align(N)` padding at the end is caught. Generic structs are accepted only with
//! `repr(transparent)`, whose layout is its single field's, because a proof that runs only
//! when a generic type is instantiated would let an unsound `unsafe impl` exist unchecked.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Member, Type};

/// Derives `shmstore::ShmType` (and `bytemuck::Pod`/`Zeroable` through `shmstore`) for a
/// `#[repr(C)]` struct of `ShmType` fields with no padding. See the `shmstore::ShmType` docs.
#[proc_macro_derive(ShmType, attributes(shm))]
pub fn derive_shm_type(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(errors) => errors.to_compile_error().into(),
    }
}

/// Accumulates every error so the user sees all of them at once, each at its own span.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, message: impl std::fmt::Display) {
        let error = syn::Error::new(span, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn push_error(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// What the `repr` attributes say, with the span of each token that matters.
#[derive(Default)]
struct Repr {
    c: Option<Span>,
    transparent: Option<Span>,
    align: Option<Span>,
    packed: Option<Span>,
}

fn parse_repr(input: &DeriveInput, errors: &mut Errors) -> Repr {
    let mut repr = Repr::default();
    let mut seen_any = false;
    for attr in &input.attrs {
        let Some(ident) = attr.path().get_ident() else {
            continue;
        };
        if ident.unraw() != "repr" {
            continue;
        }
        seen_any = true;
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(word) = meta.path.get_ident().map(IdentExt::unraw) else {
                return Err(meta.error("unknown `repr`; a shared-memory struct needs `#[repr(C)]`"));
            };
            let span = meta.path.span();
            match word.to_string().as_str() {
                "C" => repr.c = Some(span),
                "transparent" => repr.transparent = Some(span),
                "align" => {
                    skip_parenthesized(&meta)?;
                    repr.align = Some(span);
                }
                "packed" => {
                    if meta.input.peek(syn::token::Paren) {
                        skip_parenthesized(&meta)?;
                    }
                    repr.packed = Some(span);
                }
                "Rust" => errors.push(
                    span,
                    "`#[repr(Rust)]` leaves field order and padding to the compiler, so two builds may \
                     disagree on the layout; use `#[repr(C)]`",
                ),
                "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
                | "i128" | "isize" => errors.push(
                    span,
                    format!(
                        "`#[repr({word})]` is an enum representation; a struct in shared memory needs \
                         `#[repr(C)]`"
                    ),
                ),
                other => errors.push(
                    span,
                    format!(
                        "`#[repr({other})]` is not supported for shared memory; use `#[repr(C)]`, \
                         `#[repr(C, align(N))]`, `#[repr(C, packed)]` or `#[repr(transparent)]`"
                    ),
                ),
            }
            Ok(())
        });
        if let Err(error) = parsed {
            errors.push_error(error);
        }
    }
    if !seen_any {
        errors.push(
            input.ident.span(),
            format!(
                "`{}` has no `#[repr(...)]`: without one, the compiler may reorder its fields and two \
                 builds may disagree on its layout; add `#[repr(C)]`",
                input.ident.unraw()
            ),
        );
    } else if repr.c.is_none() && repr.transparent.is_none() {
        for (token, span) in [("align", repr.align), ("packed", repr.packed)] {
            if let Some(span) = span {
                errors.push(
                    span,
                    format!(
                        "`{token}` without `C` leaves the field order to the compiler; write \
                         `#[repr(C, {token}(N))]`"
                    ),
                );
            }
        }
    }
    repr
}

fn skip_parenthesized(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    let content;
    syn::parenthesized!(content in meta.input);
    content.parse::<TokenStream2>()?;
    Ok(())
}

/// `#[shm(name = "...")]`: the name stored in the layout, for a name that stays stable when the
/// type moves or is renamed.
fn parse_shm_name(input: &DeriveInput, errors: &mut Errors) -> Option<LitStr> {
    let mut name = None;
    for attr in &input.attrs {
        if attr.path().get_ident().is_none_or(|i| i.unraw() != "shm") {
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.get_ident().is_some_and(|i| i.unraw() == "name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`#[shm(name)]` cannot be empty",
                    ));
                }
                name = Some(lit);
                Ok(())
            } else {
                Err(meta.error("unknown `shm` option; the only one is `#[shm(name = \"...\")]`"))
            }
        });
        if let Err(error) = parsed {
            errors.push_error(error);
        }
    }
    name
}

/// Why a field's type, as spelled, can never be shared — or `None` when only the compiler can
/// tell (the generated `ShmType` bound then decides).
fn refusal(ty: &Type) -> Option<(Span, String)> {
    let span = ty.span();
    let text = match ty {
        Type::Array(array) => return refusal(&array.elem),
        Type::Paren(inner) => return refusal(&inner.elem),
        Type::Group(inner) => return refusal(&inner.elem),
        Type::Reference(_) => {
            "a reference cannot live in shared memory: its address means nothing in another process; \
             store the value itself, or an index or offset"
        }
        Type::Ptr(_) => {
            "a raw pointer cannot live in shared memory: its address means nothing in another process; \
             store an index or offset instead"
        }
        Type::BareFn(_) => {
            "a function pointer cannot live in shared memory: code addresses differ between processes"
        }
        Type::Tuple(t) if t.elems.is_empty() => {
            "`()` is zero-sized and carries no data; remove the field"
        }
        Type::Tuple(_) => {
            "a tuple has no stable layout; use a `#[repr(C)]` struct that derives `ShmType`"
        }
        Type::Slice(_) => "a slice has no fixed size; use an array `[T; N]`",
        Type::TraitObject(_) | Type::ImplTrait(_) => {
            "a trait object has no fixed layout and holds a vtable pointer; use a concrete type"
        }
        Type::Never(_) => "`!` has no values and cannot be stored",
        Type::Path(path) => {
            let last = path.path.segments.last()?;
            let name = last.ident.unraw().to_string();
            return refusal_by_name(&name).map(|text| (span, text));
        }
        _ => return None,
    };
    Some((span, text.to_string()))
}

fn refusal_by_name(name: &str) -> Option<String> {
    let text = match name {
        "bool" => "`bool` is not plain data: any byte other than 0 or 1 is undefined behaviour, and \
                   another process can write one; use `u8` (0 or 1)"
            .to_string(),
        "char" => "`char` is not plain data: most `u32` values are invalid chars, and another process \
                   can write one; use `u32` or `[u8; N]`"
            .to_string(),
        "usize" | "isize" => format!(
            "`{name}` has a different size in 32- and 64-bit processes, which can map the same region; \
             use `{}64` or `{}32`",
            &name[..1],
            &name[..1]
        ),
        "Box" | "Vec" | "String" | "str" | "Rc" | "Arc" | "HashMap" | "BTreeMap" | "VecDeque"
        | "CString" | "OsString" | "PathBuf" => format!(
            "`{name}` points into this process's heap, which other processes cannot see; use a \
             fixed-size array such as `[u8; N]` with a length field"
        ),
        "Option" => "`Option` is not plain data (not every bit pattern is a valid value); use a \
                     sentinel value or a separate `u8` flag"
            .to_string(),
        "Cell" | "RefCell" | "UnsafeCell" | "SyncUnsafeCell" | "OnceCell" | "Mutex" | "RwLock" => {
            format!(
                "`{name}` has interior mutability; the region's lock already guards every access, so \
                 store the plain value"
            )
        }
        "MaybeUninit" => "`MaybeUninit` may hold uninitialised bytes, which cannot be shared; store \
                          the value itself"
            .to_string(),
        "PhantomData" | "PhantomPinned" => format!(
            "`{name}` is zero-sized and has no place in a shared-memory layout; remove the field"
        ),
        _ if name.starts_with("NonZero") => format!(
            "`{name}` is not plain data (zero is invalid, and another process can write it); use the \
             plain integer"
        ),
        _ if name.starts_with("Atomic") => format!(
            "`{name}` is not plain data for this crate: the region's lock and snapshots already make \
             access safe; use the plain integer"
        ),
        _ => return None,
    };
    Some(text)
}

struct FieldInfo<'a> {
    /// `a`, `r#type` or `0`, as `offset_of!` wants it.
    member: Member,
    /// The name stored in the layout: `a`, `type`, `0`.
    display: String,
    ty: &'a Type,
    span: Span,
}

fn expand(input: &DeriveInput) -> Result<TokenStream2, syn::Error> {
    let mut errors = Errors::default();
    let ident = &input.ident;
    let type_name = ident.unraw().to_string();

    let data =
        match &input.data {
            Data::Struct(data) => data,
            Data::Enum(e) => return Err(syn::Error::new(
                e.enum_token.span,
                "an enum cannot derive `ShmType`: another process could write a discriminant that \
                 names no variant; use a `#[repr(C)]` struct with an integer tag field",
            )),
            Data::Union(u) => return Err(syn::Error::new(
                u.union_token.span,
                "a union cannot derive `ShmType`: which field is valid is unknown to the other \
                 process; use a `#[repr(C)]` struct, or `[u8; N]` bytes that you decode",
            )),
        };

    let repr = parse_repr(input, &mut errors);
    let shm_name = parse_shm_name(input, &mut errors);

    let generic = !input.generics.params.is_empty();
    if generic && repr.transparent.is_none() {
        errors.push(
            input.generics.span(),
            format!(
                "generic structs can derive `ShmType` only with `#[repr(transparent)]`: the padding \
                 proof for `{type_name}` would run only when it is instantiated; make a concrete \
                 struct, or wrap a single field in `#[repr(transparent)]`"
            ),
        );
    }
    for lifetime in input.generics.lifetimes() {
        errors.push(
            lifetime.span(),
            "a shared-memory type cannot borrow: references mean nothing in another process",
        );
    }

    let fields: Vec<FieldInfo<'_>> = match &data.fields {
        Fields::Named(named) => named
            .named
            .iter()
            .map(|f| {
                let name = f.ident.clone().expect("named field");
                FieldInfo {
                    display: name.unraw().to_string(),
                    member: Member::Named(name),
                    ty: &f.ty,
                    span: f.span(),
                }
            })
            .collect(),
        Fields::Unnamed(unnamed) => unnamed
            .unnamed
            .iter()
            .enumerate()
            .map(|(i, f)| FieldInfo {
                display: i.to_string(),
                member: Member::Unnamed(syn::Index {
                    index: i as u32,
                    span: f.span(),
                }),
                ty: &f.ty,
                span: f.span(),
            })
            .collect(),
        Fields::Unit => Vec::new(),
    };
    if fields.is_empty() {
        errors.push(
            ident.span(),
            format!(
                "`{type_name}` has no fields: a zero-sized type has nothing to share; add the fields \
                 it should hold"
            ),
        );
    }
    for field in &fields {
        if let Some((span, message)) = refusal(field.ty) {
            errors.push(span, message);
        }
    }
    errors.finish()?;

    let layout_name = shm_name.map_or_else(|| type_name.clone(), |lit| lit.value());
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause.cloned();
    if generic {
        let predicates = &mut where_clause
            .get_or_insert_with(|| syn::parse_quote!(where))
            .predicates;
        for param in input.generics.type_params() {
            let name = &param.ident;
            predicates.push(syn::parse_quote!(#name: ::shmstore::ShmType));
        }
    }
    let this = quote!(#ident #ty_generics);
    let private = quote!(::shmstore::__private);

    let field_layouts = fields.iter().map(|f| {
        let FieldInfo {
            member,
            display,
            ty,
            ..
        } = f;
        quote_spanned! {ty.span()=>
            ::shmstore::Field::new(
                #display,
                #private::offset_of!(#this, #member),
                &<#ty as ::shmstore::ShmType>::LAYOUT,
            )
        }
    });

    // Padding proofs: one constant per gap, each pointing at the field after it, and one for the
    // end. Generic (transparent) structs need none: their layout is their one field's.
    let mut proofs = Vec::new();
    if !generic {
        for pair in fields.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            let (bm, bt, am) = (&before.member, before.ty, &after.member);
            let gap = quote! {
                #private::offset_of!(#this, #am)
                    - (#private::offset_of!(#this, #bm) + #private::size_of::<#bt>())
            };
            let prefix = format!(
                "padding between `{}` and `{}` in `{type_name}`: add `_pad: [u8; ",
                before.display, after.display
            );
            let suffix = format!(
                "]` before `{}`, or reorder the fields so that none is needed",
                after.display
            );
            proofs.push(padding_proof(after.span, &gap, &prefix, &suffix));
        }
        if let Some(last) = fields.last() {
            let (lm, lt) = (&last.member, last.ty);
            let gap = quote! {
                #private::size_of::<#this>()
                    - (#private::offset_of!(#this, #lm) + #private::size_of::<#lt>())
            };
            let prefix = format!(
                "padding at the end of `{type_name}`, after `{}`: add `_pad: [u8; ",
                last.display
            );
            let suffix = if repr.align.is_some() {
                "]` as the last field (`align(N)` rounds the size up to a multiple of N)"
            } else {
                "]` as the last field, or reorder the fields so that none is needed"
            };
            let span = repr.align.unwrap_or(last.span);
            proofs.push(padding_proof(span, &gap, &prefix, suffix));
        }
        let message = format!(
            "`{type_name}` is zero-sized: a zero-sized type has nothing to share; add the fields \
             it should hold"
        );
        let private_here = quote_spanned!(ident.span()=> ::shmstore::__private);
        proofs.push(quote_spanned! {ident.span()=>
            const _: () = if #private_here::size_of::<#this>() == 0 {
                #private_here::panic!(#message)
            };
        });
    }

    let private_here = quote_spanned!(ident.span()=> ::shmstore::__private);
    let copy_check = quote_spanned! {ident.span()=>
        const _: fn() = || {
            #private_here::must_be_copy::<#this>();
        };
    };
    // Generic (transparent) structs get `Copy` from the user's derive with bounds the check
    // cannot name outside the impl; `Pod`'s own `Copy` bound reports a missing one there.
    let type_check = if generic {
        TokenStream2::new()
    } else {
        copy_check
    };

    Ok(quote! {
        #type_check

        // SAFETY: every field type implements `ShmType` (so is `Pod`), so the all-zero bit
        // pattern is a valid value of each field and hence of the struct.
        unsafe impl #impl_generics #private::Zeroable for #this #where_clause {}

        // SAFETY: the struct is `repr(C)` or `repr(transparent)` (checked by the derive), every
        // field is `Pod` (it implements `ShmType`, whose supertrait is `Pod`), and the padding
        // proofs below fail to compile if any byte between or after the fields is padding.
        // `Copy` and `'static` are required by `Pod` itself.
        unsafe impl #impl_generics #private::Pod for #this #where_clause {}

        // SAFETY: `Pod` holds (above); the fields are `ShmType`, so none is a pointer, reference
        // or pointer-sized integer; the layout is read from the compiler (`size_of`,
        // `align_of`, `offset_of!`) and each field's layout is that field type's own.
        unsafe impl #impl_generics ::shmstore::ShmType for #this #where_clause {
            const LAYOUT: ::shmstore::TypeLayout = ::shmstore::TypeLayout::structure(
                #layout_name,
                #private::size_of::<#this>(),
                #private::align_of::<#this>(),
                &[#(#field_layouts),*],
            );
        }

        #(#proofs)*
    })
}

/// A constant that fails to compile, at `span`, with `prefix`N`suffix` when `gap` (the number of
/// padding bytes) is not zero.
fn padding_proof(span: Span, gap: &TokenStream2, prefix: &str, suffix: &str) -> TokenStream2 {
    // Every token of the failing expression carries `span`, so the error points at the field.
    let private = quote_spanned!(span=> ::shmstore::__private);
    let capacity = prefix.len() + suffix.len() + 20;
    let gap_ident = format_ident!("GAP", span = span);
    quote_spanned! {span=>
        const _: () = {
            const #gap_ident: usize = #gap;
            if #gap_ident != 0 {
                let message = #private::Message::<#capacity>::new(#prefix, #gap_ident, #suffix);
                #private::panic!("{}", message.as_str())
            }
        };
    }
}
