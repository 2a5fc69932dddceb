//! `lab watch [NAME]`: check an exercise, then check again every time a file in
//! exercises/ is saved (inotify).

pub fn watch(_name: Option<&str>) {
    todo!()
}
