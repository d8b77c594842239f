use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Point {
    x: f32,
    y: f32,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Segment {
    from: Point,
    to: Point,
    id: u64,
}

fn main() {
    let layout = Segment::LAYOUT;
    assert_eq!(layout.size(), size_of::<Segment>());
    assert_eq!(layout.size(), 24);
    assert_eq!(layout.align(), align_of::<Segment>());
    let fields = layout.fields();
    assert_eq!(fields.len(), 3);
    assert_eq!(fields[1].name(), "to");
    assert_eq!(fields[1].offset(), offset_of!(Segment, to));
    assert_eq!(fields[2].offset(), offset_of!(Segment, id));
    // The nested field's layout is `Point`'s own.
    assert_eq!(fields[0].layout().name(), "Point");
    assert_eq!(
        fields[0].layout().fingerprint(),
        Point::LAYOUT.fingerprint()
    );
    assert_eq!(
        fields[1].layout().fields()[1].offset(),
        offset_of!(Point, y)
    );
    let leaves: Vec<_> = layout
        .leaves()
        .iter()
        .map(|l| (l.path.clone(), l.offset))
        .collect();
    assert_eq!(
        leaves,
        [
            ("from.x".to_string(), 0),
            ("from.y".to_string(), 4),
            ("to.x".to_string(), 8),
            ("to.y".to_string(), 12),
            ("id".to_string(), 16),
        ]
    );
}
