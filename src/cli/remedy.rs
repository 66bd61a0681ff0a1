//! The words for a library error's [`vault::error::Remedy`]: the library says what is
//! wrong and which step helps; the commands and flags that take that step are named here.

use vault::error::Remedy;

/// The text a remedy adds to its error's message.
pub fn words(r: &Remedy) -> String {
    let text = match r {
        Remedy::InitStore { location } => {
            return format!(
                "create one with `vault init --store {location}`, or point --store (or `store` in the config) at an existing store"
            )
        }
        Remedy::TryAgainOrWait => "try again when it has finished (or wait with --lock-wait)",
        Remedy::RepairIndexThenPrune => {
            "run `vault repair index` to rebuild the index from the packs, then prune again"
        }
        Remedy::RepairIndexThenCheck => {
            "run `vault repair index` (rebuilds the index from the packs), then `vault check`"
        }
        Remedy::RepairIndexThenCheckOrRepairSnapshots => {
            "run `vault repair index` (rebuilds the index from the packs), then `vault check`; \
             if data is really lost, `vault repair snapshots` writes snapshots without the lost files"
        }
        Remedy::Check => "run `vault check`",
        Remedy::PruneAgain => "run `vault prune` again",
    };
    text.to_string()
}

/// `"; "` and the remedy of the first library error in `e`'s chain that has one, or
/// nothing.
pub fn suffix(e: &anyhow::Error) -> String {
    e.chain()
        .filter_map(|c| c.downcast_ref::<vault::Error>())
        .find_map(|v| v.remedy())
        .map(|r| format!("; {}", words(&r)))
        .unwrap_or_default()
}
