//! Datasources: pools, guarded execution, typed values, catalog, demo data.
