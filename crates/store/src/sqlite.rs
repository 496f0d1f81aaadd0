#[derive(Debug, Clone)] pub struct SqliteStore;
