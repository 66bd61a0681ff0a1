//! An in-memory backend for tests and dry runs. Stores registered under a name are shared
//! within the process, so `memory://NAME` opened twice sees the same objects.

use super::{check_name, missing, Backend, BackendRef, Kind, ObjectInfo};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

type Objects = BTreeMap<(Kind, String), Arc<Vec<u8>>>;

#[derive(Default)]
pub struct MemoryBackend {
    name: String,
    objects: Mutex<Objects>,
}

impl MemoryBackend {
    pub fn new(name: &str) -> Self {
        MemoryBackend {
            name: name.to_string(),
            objects: Mutex::default(),
        }
    }

    /// The process-wide store registered under `name`, created on first use.
    pub fn shared(name: &str) -> BackendRef {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<MemoryBackend>>>> = OnceLock::new();
        let mut registry = REGISTRY.get_or_init(Mutex::default).lock().unwrap();
        registry
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(MemoryBackend::new(name)))
            .clone()
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        format!("memory://{}", self.name)
    }

    fn create(&self) -> Result<()> {
        if self.exists(Kind::Config, "config")? {
            return Err(Error::StoreExists(self.location()));
        }
        Ok(())
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        check_name(kind, name)?;
        self.objects
            .lock()
            .unwrap()
            .insert((kind, name.to_string()), Arc::new(data.to_vec()));
        Ok(())
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let objects = self.objects.lock().unwrap();
        match objects.get(&(kind, name.to_string())) {
            Some(data) => Ok(data.to_vec()),
            None => Err(missing(kind, name)),
        }
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let objects = self.objects.lock().unwrap();
        let data = objects
            .get(&(kind, name.to_string()))
            .ok_or_else(|| missing(kind, name))?;
        let end = offset.checked_add(len).filter(|&e| e <= data.len() as u64);
        match end {
            Some(end) => Ok(data[offset as usize..end as usize].to_vec()),
            None => Err(Error::corrupt(
                format!("{}/{name}", kind.label()),
                format!(
                    "object is {} bytes, shorter than the range {offset}+{len} the index names (truncated?)",
                    data.len()
                ),
            )),
        }
    }

    fn list(&self, kind: Kind) -> Result<Vec<ObjectInfo>> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        check_name(kind, name)?;
        self.objects
            .lock()
            .unwrap()
            .remove(&(kind, name.to_string()));
        Ok(())
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        check_name(kind, name)?;
        Ok(self
            .objects
            .lock()
            .unwrap()
            .contains_key(&(kind, name.to_string())))
    }
}
