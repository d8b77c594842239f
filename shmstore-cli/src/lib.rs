//! The `shmstore` command's implementation, a library so that the fuzz targets (`fuzz/`) and
//! the tests reach its rendering of arbitrary regions. Not a stable API: the command line is
//! the interface (`shmstore --help`).

#[doc(hidden)]
pub mod cheader;
#[doc(hidden)]
pub mod ckinds;
#[doc(hidden)]
pub mod compat;
#[doc(hidden)]
pub mod cstruct;
#[doc(hidden)]
pub mod failure;
#[doc(hidden)]
pub mod fields;
#[doc(hidden)]
pub mod format;
pub mod fuzzing;
#[doc(hidden)]
pub mod gc;
#[doc(hidden)]
pub mod get;
#[doc(hidden)]
pub mod inspect;
#[doc(hidden)]
pub mod json;
#[doc(hidden)]
pub mod list;
#[doc(hidden)]
pub mod procs;
#[doc(hidden)]
pub mod rm;
#[doc(hidden)]
pub mod scan;
#[doc(hidden)]
pub mod set;
#[doc(hidden)]
pub mod values;
#[doc(hidden)]
pub mod watch;
