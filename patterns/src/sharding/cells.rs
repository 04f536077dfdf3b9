//! Cell-based architecture: each tenant lives in one cell.
//!
//! Episode: 1, "The Correlation Catastrophe" (cell-based architecture)
//! Pattern: isolation / cells
//! Try it:  cargo test -p patterns cells_new_cell -- --nocapture
//! Test it: cargo test -p patterns cells
//!
//! A cell is a complete, independent copy of the stack serving a slice of
//! the tenants. A bad deploy or a poison tenant takes down one cell, not
//! the service — the blast radius is 1/cells. The router in front is the
//! one shared piece, so it must be tiny: a stable hash of the tenant
//! (rendezvous, so adding a cell moves only the tenants it takes), plus
//! explicit pins that override the hash while a tenant is being migrated.

use std::collections::BTreeMap;

use crate::hashing::rendezvous::Rendezvous;
use crate::hashing::{Placement, validate_name};
use crate::{Error, Result};

/// Routes tenants to cells.
#[derive(Clone, Debug)]
pub struct CellRouter {
    cells: Rendezvous,
    pins: BTreeMap<String, String>,
}

impl CellRouter {
    pub fn new<S: AsRef<str>>(cells: &[S]) -> Result<Self> {
        let mut placement = Rendezvous::new();
        for cell in cells {
            placement.add_node(cell.as_ref(), 1)?;
        }
        Ok(Self {
            cells: placement,
            pins: BTreeMap::new(),
        })
    }

    /// The cell serving `tenant`: its pin, or its hash.
    pub fn cell_for(&self, tenant: &str) -> Result<&str> {
        match self.pins.get(tenant) {
            Some(cell) => Ok(cell),
            None => self.cells.owner(tenant.as_bytes()),
        }
    }

    /// Pins `tenant` to `cell` (a migration in progress, a dedicated cell).
    pub fn pin(&mut self, tenant: &str, cell: &str) -> Result<()> {
        validate_name(tenant)?;
        if !self.cells.nodes().contains(&cell) {
            return Err(Error::UnknownNode {
                node: cell.to_owned(),
            });
        }
        self.pins.insert(tenant.to_owned(), cell.to_owned());
        Ok(())
    }

    /// Lets `tenant` follow its hash again.
    pub fn unpin(&mut self, tenant: &str) -> bool {
        self.pins.remove(tenant).is_some()
    }

    pub fn add_cell(&mut self, cell: &str) -> Result<()> {
        self.cells.add_node(cell, 1)
    }

    /// Retires a cell. Refused while tenants are pinned to it: they would
    /// silently lose their home.
    pub fn remove_cell(&mut self, cell: &str) -> Result<()> {
        if let Some((tenant, _)) = self.pins.iter().find(|(_, c)| c.as_str() == cell) {
            return Err(Error::CellInUse {
                cell: cell.to_owned(),
                tenant: tenant.clone(),
            });
        }
        self.cells.remove_node(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_new_cell_takes_only_its_share_of_tenants() {
        let mut router = CellRouter::new(&["cell-a", "cell-b", "cell-c"]).expect("valid");
        let tenants: Vec<String> = (0..30_000).map(|i| format!("tenant-{i}")).collect();
        let before: Vec<String> = tenants
            .iter()
            .map(|t| router.cell_for(t).expect("cells").to_owned())
            .collect();
        router.add_cell("cell-d").expect("fresh");
        let mut moved = 0;
        for (tenant, old) in tenants.iter().zip(&before) {
            let new = router.cell_for(tenant).expect("cells");
            if new != old {
                assert_eq!(new, "cell-d", "{tenant} moved between old cells");
                moved += 1;
            }
        }
        let share = f64::from(moved) / 30_000.0;
        assert!((share - 0.25).abs() < 0.02, "moved {share}");
    }

    #[test]
    fn cells_pins_override_and_protect_their_cell() {
        let mut router = CellRouter::new(&["cell-a", "cell-b"]).expect("valid");
        let hashed = router.cell_for("acme").expect("cells").to_owned();
        let other = if hashed == "cell-a" {
            "cell-b"
        } else {
            "cell-a"
        };
        router.pin("acme", other).expect("known cell");
        assert_eq!(router.cell_for("acme"), Ok(other));
        assert!(
            matches!(router.remove_cell(other), Err(Error::CellInUse { .. })),
            "a pinned tenant keeps its cell alive"
        );
        assert!(router.unpin("acme"));
        assert_eq!(router.cell_for("acme"), Ok(hashed.as_str()));
        assert_eq!(
            router.pin("acme", "cell-z"),
            Err(Error::UnknownNode {
                node: "cell-z".into()
            })
        );
        assert_eq!(
            CellRouter::new::<&str>(&[])
                .expect("empty is valid")
                .cell_for("x"),
            Err(Error::EmptyMembership)
        );
    }
}
