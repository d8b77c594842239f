use core::mem::offset_of;
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[r#repr(r#C)]
struct r#Match {
    r#type: u32,
    r#fn: u32,
    plain: u64,
}

fn main() {
    assert_eq!(r#Match::LAYOUT.name(), "Match");
    let names: Vec<_> = r#Match::LAYOUT.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["type", "fn", "plain"]);
    assert_eq!(
        r#Match::LAYOUT.fields()[1].offset(),
        offset_of!(r#Match, r#fn)
    );
    assert_eq!(r#Match::LAYOUT.size(), 16);
}
