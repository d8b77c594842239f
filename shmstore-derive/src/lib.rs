//! `#[derive(ShmType)]` for the `shmstore` crate. Use it through `shmstore::ShmType`; this crate is
//! an implementation detail and its generated code names only `::shmstore` paths.
//!
//! The analysis the derive runs is documented on the derive as `shmstore` re-exports it
//! (`shmstore::ShmType`, in `shmstore/src/lib.rs`), where docs.rs shows it to users.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Member, Type};

mod shm_enum;

/// The derive of `shmstore::ShmType` (and of `bytemuck::Pod`/`Zeroable` through `shmstore`).
/// `shmstore` re-exports it with its documentation, which rustdoc shows before this line.
#[proc_macro_derive(ShmType, attributes(shm))]
pub fn derive_shm_type(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(errors) => errors.to_compile_error().into(),
    }
}

/// The derive of `shmstore::ShmEnum`, documented where `shmstore` re-exports it.
#[proc_macro_derive(ShmEnum)]
pub fn derive_shm_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match shm_enum::expand(&input) {
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
    align: Option<ReprToken>,
    packed: Option<ReprToken>,
}

/// `align(16)` or `packed`: where it is and how it was written (for the advice in messages).
struct ReprToken {
    span: Span,
    text: String,
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
                    let text = format!("align({})", parenthesized(&meta)?);
                    repr.align = Some(ReprToken { span, text });
                }
                "packed" => {
                    let text = if meta.input.peek(syn::token::Paren) {
                        format!("packed({})", parenthesized(&meta)?)
                    } else {
                        "packed".to_string()
                    };
                    repr.packed = Some(ReprToken { span, text });
                }
                "Rust" => errors.push(
                    span,
                    "`#[repr(Rust)]` leaves field order and padding to the compiler, so two builds \
                     may disagree on the layout; use `#[repr(C)]`",
                ),
                "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
                | "i128" | "isize" => errors.push(
                    span,
                    format!(
                        "`#[repr({word})]` is an enum representation; a struct in shared memory \
                         needs `#[repr(C)]`"
                    ),
                ),
                other => {
                    if meta.input.peek(syn::token::Paren) {
                        parenthesized(&meta)?;
                    }
                    errors.push(
                        span,
                        format!(
                            "`#[repr({other})]` is not supported for shared memory; use \
                             `#[repr(C)]`, `#[repr(C, align(N))]`, `#[repr(C, packed)]` or \
                             `#[repr(transparent)]`"
                        ),
                    )
                }
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
                "`{}` has no `#[repr(...)]`: without one, the compiler may reorder its fields and \
                 two builds may disagree on its layout; add `#[repr(C)]`",
                input.ident.unraw()
            ),
        );
    } else if repr.c.is_none() && repr.transparent.is_none() {
        for token in [&repr.align, &repr.packed].into_iter().flatten() {
            errors.push(
                token.span,
                format!(
                    "`{0}` without `C` leaves the field order to the compiler; write \
                     `#[repr(C, {0})]`",
                    token.text
                ),
            );
        }
    }
    repr
}

/// Consumes `( ... )` after a `repr` word and returns its contents as written.
fn parenthesized(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<String> {
    let content;
    syn::parenthesized!(content in meta.input);
    Ok(content.parse::<TokenStream2>()?.to_string())
}

/// The options of `#[shm(...)]` on a struct.
#[derive(Default)]
struct ShmOptions {
    /// `name = "..."`: the name stored in the layout, for a name that stays stable when the type
    /// moves or is renamed.
    name: Option<LitStr>,
    /// `default_zeroed`: also implement `Default` as the all-zero value.
    default_zeroed: Option<Span>,
}

const SHM_OPTIONS: &str = "the options are `#[shm(name = \"...\")]` and `#[shm(default_zeroed)]`";

fn parse_shm_options(input: &DeriveInput, errors: &mut Errors) -> ShmOptions {
    let mut options = ShmOptions::default();
    for attr in &input.attrs {
        if attr.path().get_ident().is_none_or(|i| i.unraw() != "shm") {
            continue;
        }
        if !matches!(attr.meta, syn::Meta::List(_)) {
            errors.push_error(syn::Error::new_spanned(
                attr,
                format!("`#[shm]` takes an option in parentheses; {SHM_OPTIONS}"),
            ));
            continue;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.get_ident().is_some_and(|i| i.unraw() == "name") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`#[shm(name = \"\")]`: the layout name cannot be empty; write the name \
                         other binaries know this type by, or remove the attribute to use the \
                         struct's own name",
                    ));
                }
                if options.name.is_some() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`#[shm(name = ...)]` is given twice; keep one",
                    ));
                }
                options.name = Some(lit);
                Ok(())
            } else if meta
                .path
                .get_ident()
                .is_some_and(|i| i.unraw() == "default_zeroed")
            {
                if options.default_zeroed.is_some() {
                    return Err(meta.error("`#[shm(default_zeroed)]` is given twice; keep one"));
                }
                options.default_zeroed = Some(meta.path.span());
                Ok(())
            } else {
                Err(meta.error(format!("unknown `shm` option; {SHM_OPTIONS}")))
            }
        });
        if let Err(error) = parsed {
            errors.push_error(error);
        }
    }
    options
}

/// What the derive knows about a field's type from its spelling alone.
enum Verdict {
    /// The type can never be shared, whatever the names in scope resolve to: a reference, a
    /// pointer, a tuple, `bool`, `usize`… The derive refuses it with this error.
    Refuse(syn::Error),
    /// The last path segment names a standard type that is not `ShmType` (`Box`, `Cell`,
    /// `Option`…). The name may also be a user's own `ShmType` struct, so the compiler decides:
    /// the field's layout is read through `__private::hint::<this>::<T>()`, whose bound fails
    /// with a message written for that kind of type.
    Hint(&'static str),
    /// Only the `ShmType` bound can tell.
    Plain,
}

fn classify(ty: &Type) -> Verdict {
    let refuse = |text: &str| Verdict::Refuse(syn::Error::new_spanned(ty, text));
    match ty {
        // `[T; N]` is `ShmType` when `T` is: refuse what `T` can never be, and let the bound
        // judge the rest (a hint on the array would report the element anyway).
        Type::Array(array) => match classify(&array.elem) {
            Verdict::Refuse(error) => Verdict::Refuse(error),
            Verdict::Hint(_) | Verdict::Plain => Verdict::Plain,
        },
        Type::Paren(inner) => classify(&inner.elem),
        Type::Group(inner) => classify(&inner.elem),
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if primitive_name(p).as_deref() == Some("str") => refuse(
                "`&str` cannot live in shared memory: it points into this process's memory; store \
                 the text in place with `shmstore::value::FixedStr<N>` (at most N bytes)",
            ),
            _ => refuse(
                "a reference cannot live in shared memory: its address means nothing in another \
                 process; store the value itself, or an index or offset",
            ),
        },
        Type::Ptr(_) => refuse(
            "a raw pointer cannot live in shared memory: its address means nothing in another \
             process; store an index or offset instead",
        ),
        Type::BareFn(_) => refuse(
            "a function pointer cannot live in shared memory: code addresses differ between \
             processes; store a `u32` code and match on it",
        ),
        Type::Tuple(t) if t.elems.is_empty() => {
            refuse("`()` is zero-sized and carries no data; remove the field")
        }
        Type::Tuple(_) => refuse(
            "a tuple has no stable layout (the compiler may reorder and pad it); use a \
             `#[repr(C)]` struct that derives `ShmType`",
        ),
        Type::Slice(_) => refuse("a slice has no fixed size; use an array `[T; N]`"),
        Type::TraitObject(_) | Type::ImplTrait(_) => refuse(
            "a trait object has no fixed layout and holds a vtable pointer; use a concrete type",
        ),
        Type::Never(_) => refuse("`!` has no values and cannot be stored; remove the field"),
        Type::Path(path) => {
            if let Some(name) = primitive_name(path) {
                return match primitive_refusal(&name) {
                    Some(text) => refuse(&text),
                    None => Verdict::Plain,
                };
            }
            match path.path.segments.last() {
                Some(last) => {
                    hint_for(&last.ident.unraw().to_string()).map_or(Verdict::Plain, Verdict::Hint)
                }
                None => Verdict::Plain,
            }
        }
        _ => Verdict::Plain,
    }
}

/// `bool`, `core::primitive::bool` or `::std::primitive::bool` → `"bool"`: a path that can only
/// mean a primitive type (nobody names a struct `bool`).
fn primitive_name(path: &syn::TypePath) -> Option<String> {
    if path.qself.is_some() {
        return None;
    }
    let segments: Vec<_> = path.path.segments.iter().collect();
    let last = segments.last()?;
    if !last.arguments.is_none() {
        return None;
    }
    let prefix_ok = match segments.as_slice() {
        [_] => path.path.leading_colon.is_none(),
        [krate, module, _] => {
            let krate = krate.ident.unraw();
            (krate == "core" || krate == "std") && module.ident.unraw() == "primitive"
        }
        _ => false,
    };
    let name = last.ident.unraw().to_string();
    let primitive = matches!(
        name.as_str(),
        "bool"
            | "char"
            | "usize"
            | "isize"
            | "str"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "i8"
            | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "f32"
            | "f64"
    );
    (prefix_ok && primitive).then_some(name)
}

fn primitive_refusal(name: &str) -> Option<String> {
    let text = match name {
        "bool" => "`bool` cannot live in shared memory: any byte other than 0 or 1 is undefined \
                   behaviour, and another process can write one; use `shmstore::value::Flag`"
            .to_string(),
        "char" => "`char` cannot live in shared memory: most `u32` values are invalid chars, and \
                   another process can write one; use `u32` or `[u8; 4]`"
            .to_string(),
        "usize" | "isize" => format!(
            "`{name}` cannot live in shared memory: it has a different size in 32- and 64-bit \
             processes, which can map the same region; use `{0}64` or `{0}32`",
            &name[..1]
        ),
        "str" => "`str` has no fixed size; use `shmstore::value::FixedStr<N>` (at most N bytes)"
            .to_string(),
        _ => return None,
    };
    Some(text)
}

/// The `__private::hint` function whose bound explains why a standard type named `name` is not
/// `ShmType` (see `Verdict::Hint`).
fn hint_for(name: &str) -> Option<&'static str> {
    let hint = match name {
        "Box" | "Vec" | "String" | "Rc" | "Arc" | "Weak" | "Cow" | "HashMap" | "HashSet"
        | "BTreeMap" | "BTreeSet" | "VecDeque" | "BinaryHeap" | "LinkedList" | "CString"
        | "OsString" | "PathBuf" => "heap",
        "Option" | "Result" => "enumeration",
        "Cell" | "RefCell" | "UnsafeCell" | "SyncUnsafeCell" | "OnceCell" | "OnceLock"
        | "LazyCell" | "LazyLock" | "Mutex" | "RwLock" => "interior_mutability",
        "MaybeUninit" => "maybe_uninit",
        "PhantomData" | "PhantomPinned" => "zero_sized",
        "NonZero" | "NonZeroU8" | "NonZeroU16" | "NonZeroU32" | "NonZeroU64" | "NonZeroU128"
        | "NonZeroUsize" | "NonZeroI8" | "NonZeroI16" | "NonZeroI32" | "NonZeroI64"
        | "NonZeroI128" | "NonZeroIsize" => "nonzero",
        "AtomicBool" | "AtomicU8" | "AtomicU16" | "AtomicU32" | "AtomicU64" | "AtomicUsize"
        | "AtomicI8" | "AtomicI16" | "AtomicI32" | "AtomicI64" | "AtomicIsize" | "AtomicPtr" => {
            "atomic"
        }
        _ => return None,
    };
    Some(hint)
}

struct FieldInfo<'a> {
    /// `a`, `r#type` or `0`, as `offset_of!` wants it.
    member: Member,
    /// The name stored in the layout: `a`, `type`, `0`.
    display: String,
    /// Whether the struct has named fields (`_pad: [u8; N]`) or is a tuple struct.
    named: bool,
    ty: &'a Type,
    /// Where errors about this field point: its name, or its type in a tuple struct.
    span: Span,
}

impl FieldInfo<'_> {
    /// How messages name the field: `` `a` `` or `` field `0` ``.
    fn label(&self) -> String {
        if self.named {
            format!("`{}`", self.display)
        } else {
            format!("field `{}`", self.display)
        }
    }
}

fn expand(input: &DeriveInput) -> Result<TokenStream2, syn::Error> {
    let mut errors = Errors::default();
    let ident = &input.ident;
    let type_name = ident.unraw().to_string();

    let data =
        match &input.data {
            Data::Struct(data) => data,
            Data::Enum(e) => {
                return Err(syn::Error::new(
                    e.enum_token.span,
                    "an enum cannot derive `ShmType`: another process could write a discriminant \
                 that names no variant; derive `ShmEnum` on it (with `#[repr(u8)]` or another \
                 integer) and store it in a `shmstore::value::EnumField`",
                ))
            }
            Data::Union(u) => return Err(syn::Error::new(
                u.union_token.span,
                "a union cannot derive `ShmType`: which field is valid is unknown to the other \
                 process; use a `#[repr(C)]` struct, or `[u8; N]` bytes that you decode",
            )),
        };

    let repr = parse_repr(input, &mut errors);
    let options = parse_shm_options(input, &mut errors);

    let has_type_or_const_params = input
        .generics
        .params
        .iter()
        .any(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
    // A generic struct is padding-free for every argument only when it cannot have padding at
    // all: `repr(transparent)` (the layout of its one field) or `repr(C, packed)` (alignment 1,
    // each field right after the previous one). A proof that runs per instantiation would let
    // the `unsafe impl Pod` exist for arguments no one checked.
    let packed_tightly = repr
        .packed
        .as_ref()
        .is_some_and(|p| p.text == "packed" || p.text.replace(' ', "") == "packed(1)");
    let generic_padding_free = repr.transparent.is_some() || (repr.c.is_some() && packed_tightly);
    if has_type_or_const_params && !generic_padding_free {
        errors.push_error(syn::Error::new_spanned(
            &input.generics,
            format!(
                "generic structs can derive `ShmType` only with `#[repr(C, packed)]` or \
                 `#[repr(transparent)]`: `{type_name}` may have padding for some arguments, and \
                 a padding proof that runs only when it is instantiated would let an unchecked \
                 `unsafe impl` exist; write `#[repr(C, packed)]` (free when every field is \
                 1-aligned, as `u8` arrays and `FixedStr` are), make a concrete struct, or wrap \
                 a single field in `#[repr(transparent)]`"
            ),
        ));
    }
    for lifetime in input.generics.lifetimes() {
        errors.push_error(syn::Error::new_spanned(
            lifetime,
            "a shared-memory type cannot borrow: a reference means nothing in another process; \
             remove the lifetime and store the value itself",
        ));
    }

    let named = matches!(data.fields, Fields::Named(_));
    let fields: Vec<FieldInfo<'_>> = data
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.ident {
            Some(name) => FieldInfo {
                display: name.unraw().to_string(),
                member: Member::Named(name.clone()),
                named,
                ty: &f.ty,
                span: name.span(),
            },
            None => {
                let span = first_span(&f.ty);
                FieldInfo {
                    display: i.to_string(),
                    member: Member::Unnamed(syn::Index {
                        index: i as u32,
                        span,
                    }),
                    named,
                    ty: &f.ty,
                    span,
                }
            }
        })
        .collect();
    if fields.is_empty() {
        errors.push(
            ident.span(),
            format!(
                "`{type_name}` has no fields: a zero-sized type has nothing to share; add the \
                 fields it should hold"
            ),
        );
    }
    for field in &data.fields {
        for attr in &field.attrs {
            if attr.path().get_ident().is_some_and(|i| i.unraw() == "shm") {
                errors.push_error(syn::Error::new_spanned(
                    attr,
                    "`#[shm(...)]` belongs on the struct, not on a field: field names in the \
                     layout are the Rust names; remove this attribute",
                ));
            }
        }
    }
    let mut hints = Vec::with_capacity(fields.len());
    for field in &fields {
        match classify(field.ty) {
            Verdict::Refuse(error) => errors.push_error(error),
            Verdict::Hint(hint) => hints.push(Some(hint)),
            Verdict::Plain => hints.push(None),
        }
    }
    errors.finish()?;

    let layout_name = options
        .name
        .map_or_else(|| type_name.clone(), |lit| lit.value());
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let this = quote!(#ident #ty_generics);
    let private = quote!(::shmstore::__private);

    // `T: ShmType` for every type parameter (only transparent structs have any).
    let mut generic_where = where_clause.cloned();
    if has_type_or_const_params {
        let predicates = &mut generic_where
            .get_or_insert_with(|| syn::parse_quote!(where))
            .predicates;
        for param in input.generics.type_params() {
            let name = &param.ident;
            predicates.push(syn::parse_quote!(#name: ::shmstore::ShmType));
        }
    }
    // The impls also require `Self: Copy + Sync` (what `Pod` and `ShmType` need beyond the
    // fields). Behind `for<'__shm>` the compiler does not check these bounds eagerly, so a
    // missing `#[derive(Clone, Copy)]` or a non-`Sync` field is reported once, by the checks
    // below that explain it, instead of also as "`Pod` requires `Copy`". When the bounds do
    // not hold, the impls simply do not apply — and those checks fail the build.
    let mut impl_where = generic_where.clone();
    impl_where
        .get_or_insert_with(|| syn::parse_quote!(where))
        .predicates
        .push(syn::parse_quote!(
            for<'__shm> #this: ::shmstore::__private::Copy + ::shmstore::__private::Sync
        ));

    let field_layouts = fields.iter().zip(&hints).map(|(f, hint)| {
        let FieldInfo {
            member,
            display,
            ty,
            ..
        } = f;
        // Every token of the expression that names the field type spans that type, so a type
        // that is not `ShmType` is underlined whole.
        let (first, last) = (first_span(ty), last_span(ty));
        let layout = match hint {
            Some(hint) => {
                let function = format_ident!("{}", hint, span = first);
                let open = quote_spanned!(first=> ::shmstore::__private::hint::#function::<);
                let close = quote_spanned!(last=> >());
                quote!(#open #ty #close)
            }
            None => {
                let open = quote_spanned!(first=> &<);
                let close = quote_spanned!(last=> as ::shmstore::ShmType>::LAYOUT);
                quote!(#open #ty #close)
            }
        };
        quote! {
            ::shmstore::layout::Field::new(#display, #private::offset_of!(#this, #member), #layout)
        }
    });

    let mut checks = Vec::new();

    // `Copy`, reported by a bound whose message says to derive it (the impls above only require
    // it behind `for<'__shm>`). A generic struct is checked in a generic function, under the
    // bounds its own `Copy` impl will see; that function is never called.
    let private_here = quote_spanned!(ident.span()=> ::shmstore::__private);
    checks.push(if has_type_or_const_params {
        quote_spanned! {ident.span()=>
            const _: () = {
                #[allow(dead_code)]
                fn __shm_must_be_copy #impl_generics () #generic_where {
                    #private_here::must_be_copy::<#this>();
                }
            };
        }
    } else {
        quote_spanned! {ident.span()=>
            const _: fn() = || {
                #private_here::must_be_copy::<#this>();
            };
        }
    });

    // Padding proofs: one constant per gap, each pointing at the field after it, and one for
    // the end. A transparent struct needs none: it has the layout of its one non-zero-sized
    // field (and its zero-sized fields may sit at any offset, so pairwise gaps mean nothing).
    // A generic packed struct needs none either (it has no padding by construction, and a
    // `const _` item cannot name its parameters).
    if repr.transparent.is_none() && !has_type_or_const_params {
        for pair in fields.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            let (bm, bt, am) = (&before.member, before.ty, &after.member);
            let gap = quote! {
                #private::offset_of!(#this, #am)
                    - (#private::offset_of!(#this, #bm) + #private::size_of::<#bt>())
            };
            let prefix = format!(
                "padding between {} and {} in `{type_name}`: add {}",
                before.label(),
                after.label(),
                pad_field_start(after.named)
            );
            let suffix = format!(
                "]` before {}, or reorder the fields so that none is needed",
                after.label()
            );
            checks.push(padding_proof(after.span, &gap, &prefix, &suffix));
        }
        if let Some(last) = fields.last() {
            let (lm, lt) = (&last.member, last.ty);
            let gap = quote! {
                #private::size_of::<#this>()
                    - (#private::offset_of!(#this, #lm) + #private::size_of::<#lt>())
            };
            let prefix = format!(
                "padding at the end of `{type_name}`, after {}: add {}",
                last.label(),
                pad_field_start(last.named)
            );
            let suffix = match &repr.align {
                Some(align) => format!(
                    "]` as the last field (`{}` rounds the size up to a multiple of the \
                     alignment), or lower the alignment",
                    align.text
                ),
                None => {
                    "]` as the last field, or reorder the fields so that none is needed".to_string()
                }
            };
            let span = repr.align.as_ref().map_or(last.span, |align| align.span);
            checks.push(padding_proof(span, &gap, &prefix, &suffix));
        }
    }
    // A generic (transparent) struct is zero-sized only for a zero-sized argument, which is
    // known only once it is instantiated; `[T; 0]` arguments are the only such `ShmType`s.
    if !has_type_or_const_params {
        let message = format!(
            "`{type_name}` is zero-sized: a zero-sized type has nothing to share; add the fields \
             it should hold"
        );
        checks.push(quote_spanned! {ident.span()=>
            const _: () = if #private_here::size_of::<#this>() == 0 {
                #private_here::panic!("{}", #message)
            };
        });
    }

    // `#[shm(default_zeroed)]`: `Default` as the all-zero value, which every `ShmType` has,
    // where `#[derive(Default)]` stops at arrays of more than 32 elements.
    let default_impl = options.default_zeroed.map(|span| {
        let default = quote_spanned!(span=> ::core::default::Default);
        quote! {
            impl #impl_generics #default for #this #impl_where {
                /// Every byte zero (`#[shm(default_zeroed)]`): see `shmstore::zeroed`.
                fn default() -> Self {
                    ::shmstore::zeroed::<Self>()
                }
            }
        }
    });

    Ok(quote! {
        // SAFETY: every field type implements `ShmType` (so is `Pod`), so the all-zero bit
        // pattern is a valid value of each field and hence of the struct.
        unsafe impl #impl_generics #private::Zeroable for #this #generic_where {}

        // SAFETY: the struct is `repr(C)` (maybe packed) or `repr(transparent)` (checked by the
        // derive) and every field is `Pod` (it implements `ShmType`, whose supertrait is `Pod`). A
        // `repr(C)`
        // struct has no padding: the proofs below fail to compile if any byte between or after
        // the fields is padding. A `repr(transparent)` struct has the layout of its one field
        // that is not a 1-aligned zero-sized type, which is `Pod` and so has no padding. A
        // generic struct is `repr(transparent)` or `repr(C, packed)`/`packed(1)` (checked by
        // the derive): packed to 1, its alignment is 1 and each field starts right where the
        // previous one ends, so it has no padding for any argument, without a proof.
        // `Copy` is a bound of this impl; `'static` holds because the struct has no lifetime
        // and its type parameters are `ShmType: 'static`.
        unsafe impl #impl_generics #private::Pod for #this #impl_where {}

        // SAFETY: `Pod` holds (above); the fields are `ShmType`, so none is a pointer, reference
        // or pointer-sized integer; the layout is read from the compiler (`size_of`,
        // `align_of`, `offset_of!`) and each field's layout is that field type's own.
        unsafe impl #impl_generics ::shmstore::ShmType for #this #impl_where {
            const LAYOUT: ::shmstore::layout::TypeLayout =
                ::shmstore::layout::TypeLayout::structure(
                    #layout_name,
                    #private::size_of::<#this>(),
                    #private::align_of::<#this>(),
                    &[#(#field_layouts),*],
                );
        }

        #(#checks)*

        #default_impl
    })
}

/// How the padding advice names the filler: a named field, or a tuple-struct element.
fn pad_field_start(named: bool) -> &'static str {
    if named {
        "`_pad: [u8; "
    } else {
        "a field of type `[u8; "
    }
}

/// The span of a type's first token.
fn first_span(ty: &Type) -> Span {
    ty.to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

/// The span of a type's last token.
fn last_span(ty: &Type) -> Span {
    ty.to_token_stream()
        .into_iter()
        .last()
        .map_or_else(Span::call_site, |t| t.span())
}

/// A constant that fails to compile, at `span`, with `prefix`N`suffix` when `gap` (the number of
/// padding bytes) is not zero.
fn padding_proof(span: Span, gap: &TokenStream2, prefix: &str, suffix: &str) -> TokenStream2 {
    // Every token of the failing expression carries `span`, so the error points at the field.
    let private = quote_spanned!(span=> ::shmstore::__private);
    let capacity = prefix.len() + suffix.len() + 20;
    // No local bindings: a binding named `gap` would become a constant pattern if the user has
    // a constant of that name in scope (hygiene does not protect a binding from items).
    quote_spanned! {span=>
        const _: () = if #gap != 0 {
            #private::panic!(
                "{}",
                #private::Message::<#capacity>::new(#prefix, #gap, #suffix).as_str()
            )
        };
    }
}
