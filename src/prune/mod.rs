//! Removing data no snapshot needs, as options -> [`plan`] -> [`execute`].
//!
//! [`plan`] does steps 0 to 2 and changes nothing; a dry run renders its plan (every pack
//! deleted, repacked or dropped from the index, with the reason). [`execute`] carries out
//! that same plan, steps 3 to 5, after checking that the packs it keeps or copies from are
//! still there as planned.
//!
//! Under an exclusive lease (so no snapshot runs meanwhile, see [`crate::lock`]):
//! 0. reconcile the cache with the store's index files; if any cannot be read, stop;
//! 1. mark: walk every snapshot's trees and collect the blobs they use, and prove that
//!    every one of them lies in a pack the loaded index names and the store holds, and
//!    that every tree reads; if not, stop before changing anything (the index is
//!    incomplete: deleting "unreferenced" packs would delete what snapshots need);
//! 2. sort packs: fully used packs stay; packs with no used blob go; packs whose unused
//!    share exceeds the repack threshold have their used blobs copied into new packs;
//! 3. write new index files naming every pack that stays and every new pack;
//! 4. delete the index files that existed before;
//! 5. delete the packs that went or were repacked, then stale leases.
//!
//! Any interruption leaves a healthy store: until step 4 the old index files still name
//! every old pack; after it the new ones name everything kept, and a pack is deleted only
//! once no index file names it. Packs left behind by an interrupted run are unreferenced
//! and go in the next run. Partial writes in the store's `tmp/` older than
//! [`crate::backend::LEFTOVER_GRACE`] go at the end.
//!
//! A stop before any change is [`crate::error::Error::Prune`] with a typed
//! [`crate::error::PruneStop`] and its remedy.

mod execute;
mod plan;

pub use execute::{execute, KeptObject, KeptWhy, PruneReport};
pub use plan::{plan, PackAction, PackReason, PlannedPack, PrunePlan};

use crate::cache::Cache;
use crate::error::Result;
use crate::reader::BlobReader;
use std::time::Duration;

/// The repack threshold when none is given: packs more than this many percent unused are
/// repacked.
pub const DEFAULT_REPACK_THRESHOLD_PERCENT: u8 = 20;

pub struct PruneOptions {
    /// Plan only, without the store's exclusive lease; the plan cannot be executed.
    pub dry_run: bool,
    /// Packs whose unused bytes exceed this share of the pack are repacked.
    pub repack_threshold: f64,
    pub lock_wait: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_threshold: DEFAULT_REPACK_THRESHOLD_PERCENT as f64 / 100.0,
            lock_wait: Duration::ZERO,
        }
    }
}

/// Plans and executes a prune (`opts.dry_run` must be false).
pub fn run(reader: &BlobReader, cache: &mut Cache, opts: &PruneOptions) -> Result<PruneReport> {
    let plan = plan(reader, cache, opts)?;
    execute(reader, cache, plan)
}
