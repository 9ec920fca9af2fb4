//! The control side of a data plane: the process state ([`app::App`]) with the live revisions,
//! the compiled config revision ([`runtime::Runtime`]), and where revisions come from
//! ([`sources`]: a file, or the ConfigMaps the operator writes).

pub mod app;
pub mod runtime;
pub mod sources;
