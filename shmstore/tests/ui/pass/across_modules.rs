use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

mod geometry {
    pub mod shapes {
        use shmstore::ShmType;

        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        pub struct Point {
            pub x: f32,
            pub y: f32,
        }
    }
}

mod scene {
    use crate::geometry::shapes::Point;
    use shmstore::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Scene {
        pub origin: Point,
        pub corners: [crate::geometry::shapes::Point; 4],
        pub count: u64,
    }
}

fn main() {
    use scene::Scene;
    assert_eq!(Scene::LAYOUT.size(), size_of::<Scene>());
    assert_eq!(
        Scene::LAYOUT.fields()[1].offset(),
        offset_of!(Scene, corners)
    );
    assert_eq!(Scene::LAYOUT.fields()[2].offset(), offset_of!(Scene, count));
    assert_eq!(Scene::LAYOUT.fields()[0].layout().name(), "Point");
    assert_eq!(Scene::LAYOUT.align(), align_of::<u64>());
}
