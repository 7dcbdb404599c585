//! Merkle trees over audit records, as RFC 9162 §2.1 (Certificate
//! Transparency v2, the successor of RFC 6962) defines them:
//!
//! ```text
//! leaf hash  = SHA-256(0x00 || record)
//! node hash  = SHA-256(0x01 || left || right)
//! MTH({})    = SHA-256()
//! MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two < n
//! ```
//!
//! The `0x00`/`0x01` prefixes separate leaves from inner nodes, so no inner
//! node can be passed off as a record (a second-preimage attack). An
//! inclusion proof (the audit path) lets someone holding one record and a
//! signed root check that the record is in the sealed segment without the
//! other records.

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Longest accepted audit path: a tree of 2^64 leaves has 64 levels.
pub const MAX_PATH_LEN: usize = 64;

/// The hash of a leaf holding `record`.
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(record);
    hasher.finalize().into()
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root over leaf hashes, in order.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` (RFC 9162 §2.1.3.1), bottom up; `None`
/// when `index` is outside the tree.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    collect_path(leaves, index, &mut path);
    Some(path)
}

fn collect_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if index < k {
        collect_path(&leaves[..k], index, path);
        path.push(root(&leaves[k..]));
    } else {
        collect_path(&leaves[k..], index - k, path);
        path.push(root(&leaves[..k]));
    }
}

/// Checks that `leaf` is leaf `index` of a tree of `size` leaves with root
/// `expected_root` (RFC 9162 §2.1.3.2). Every refusal is
/// `audit_proof_invalid`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    path: &[Hash],
    expected_root: &Hash,
) -> Result<()> {
    if index >= size {
        return Err(invalid(format!(
            "leaf {index} is outside a tree of {size} leaves"
        )));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(invalid(format!(
            "an audit path of {} hashes is longer than any tree has",
            path.len()
        )));
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return Err(invalid("the audit path is longer than the tree is deep"));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(invalid("the audit path is shorter than the tree is deep"));
    }
    if r != *expected_root {
        return Err(invalid(
            "the audit path does not lead to the signed root: the record is not in that segment",
        ));
    }
    Ok(())
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::AuditProofInvalid, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("r{i}").as_bytes()))
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 9162's empty-tree hash and a hand-built three-leaf tree.
    #[test]
    fn roots_match_the_definition() {
        assert_eq!(
            hex(&root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(3);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        // A leaf is never an inner node of the same bytes.
        assert_ne!(leaf_hash(&[l[0], l[1]].concat()), node_hash(&l[0], &l[1]));
    }

    /// The second-preimage attack: a "record" whose bytes are two child
    /// hashes, presented as leaf 0 of a two-leaf tree under the real root.
    /// Without the 0x00/0x01 prefixes it would hash to the inner node.
    #[test]
    fn an_inner_node_is_not_accepted_as_a_record() {
        let l = leaves(4);
        let r = root(&l);
        let forged_record = [l[0], l[1]].concat();
        let err = verify_inclusion(
            &leaf_hash(&forged_record),
            0,
            2,
            &[node_hash(&l[2], &l[3])],
            &r,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::AuditProofInvalid);
    }

    #[test]
    fn out_of_range_and_wrong_length_paths_are_refused() {
        let l = leaves(5);
        let r = root(&l);
        let path = inclusion_proof(&l, 4).unwrap();
        assert!(inclusion_proof(&l, 5).is_none());
        let code = |res: Result<()>| res.unwrap_err().code;
        assert_eq!(
            code(verify_inclusion(&l[4], 5, 5, &path, &r)),
            ErrorCode::AuditProofInvalid
        );
        let mut longer = path.clone();
        longer.push(l[0]);
        assert_eq!(
            code(verify_inclusion(&l[4], 4, 5, &longer, &r)),
            ErrorCode::AuditProofInvalid
        );
        assert_eq!(
            code(verify_inclusion(&l[4], 4, 5, &path[..path.len() - 1], &r)),
            ErrorCode::AuditProofInvalid
        );
        assert_eq!(
            code(verify_inclusion(&l[4], 4, 5, &vec![l[0]; 65], &r)),
            ErrorCode::AuditProofInvalid
        );
    }

    proptest! {
        /// Every leaf of every tree up to 70 leaves proves against the root.
        #[test]
        fn every_leaf_proves(n in 1usize..70, pick in any::<prop::sample::Index>()) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick.index(n);
            let path = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &path, &r).is_ok());
        }

        /// A proof moved to another index, another size, another leaf or
        /// with one bit flipped in the path fails.
        #[test]
        fn tampered_proofs_fail(
            n in 2usize..70,
            pick in any::<prop::sample::Index>(),
            other in any::<prop::sample::Index>(),
            bit in 0usize..256,
        ) {
            let l = leaves(n);
            let r = root(&l);
            let i = pick.index(n);
            let j = other.index(n);
            let path = inclusion_proof(&l, i).unwrap();
            if j != i {
                prop_assert!(verify_inclusion(&l[i], j as u64, n as u64, &path, &r).is_err());
                prop_assert!(verify_inclusion(&l[j], i as u64, n as u64, &path, &r).is_err());
            }
            let mut flipped = path.clone();
            if !flipped.is_empty() {
                let at = bit % (flipped.len() * 256);
                flipped[at / 256][(at % 256) / 8] ^= 1 << (at % 8);
                prop_assert!(verify_inclusion(&l[i], i as u64, n as u64, &flipped, &r).is_err());
            }
            // The same leaf and path claimed in a tree of one more leaf.
            let bigger = leaves(n + 1);
            prop_assert!(verify_inclusion(&l[i], i as u64, n as u64 + 1, &path, &root(&bigger)).is_err());
        }
    }
}
