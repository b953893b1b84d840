//! Lock keys: Seata's `lockKey` text to row locks, and the row key that is the unit of mutual
//! exclusion.
//!
//! The parser reproduces `AbstractLockManager.collectRowLocks` byte for byte, including its early
//! exits and the quirks of Java's `String.split` (trailing empty items are dropped, so a pk part made
//! only of commas yields no items and stops parsing) and of `StringUtils.isBlank` (Java's
//! `Character.isWhitespace`, which is not Rust's `char::is_whitespace`).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::LockError;

/// Separator between resource id, table name and primary key in a row key (Seata's `LOCK_SPLIT`).
pub const ROW_KEY_SEPARATOR: &str = "^^^";

/// Separator between table groups in a lock key.
const GROUP_SEPARATOR: char = ';';
/// Separator between a table name and its primary keys.
const TABLE_SEPARATOR: char = ':';
/// Separator between primary-key values of one table group.
const PK_SEPARATOR: char = ',';

/// The row key `resourceId^^^tableName^^^pk`: the unit of mutual exclusion (primary key of
/// Seata's `lock_table`).
pub fn row_key(resource_id: &str, table_name: &str, pk: &str) -> String {
    let mut key = String::with_capacity(resource_id.len() + table_name.len() + pk.len() + 2 * ROW_KEY_SEPARATOR.len());
    key.push_str(resource_id);
    key.push_str(ROW_KEY_SEPARATOR);
    key.push_str(table_name);
    key.push_str(ROW_KEY_SEPARATOR);
    key.push_str(pk);
    key
}

/// One row to lock: resource, table and primary-key value, stored once as its row key.
///
/// Cloning is cheap (the text is shared). Two row locks conflict when their [`row_key`]s are
/// equal, even if they were built from different parts (`"a^^^b"` + `"c"` vs `"a"` + `"b^^^c"`),
/// exactly as in Seata, where `row_key` is the database primary key.
///
/// [`row_key`]: RowLock::row_key
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RowLock {
    key: Arc<str>,
    resource_len: usize,
    table_len: usize,
}

impl RowLock {
    /// Builds the row lock for `pk` of `table_name` in `resource_id`.
    pub fn new(resource_id: &str, table_name: &str, pk: &str) -> Self {
        RowLock {
            key: Arc::from(row_key(resource_id, table_name, pk)),
            resource_len: resource_id.len(),
            table_len: table_name.len(),
        }
    }

    /// The row key `resourceId^^^tableName^^^pk`.
    pub fn row_key(&self) -> &str {
        &self.key
    }

    /// The row key as a shared string (cheap to clone into maps).
    pub(crate) fn shared_key(&self) -> &Arc<str> {
        &self.key
    }

    /// The resource id (AT: the JDBC URL without parameters).
    pub fn resource_id(&self) -> &str {
        self.key.get(..self.resource_len).unwrap_or_default()
    }

    /// The table name, in whatever case the client sent it.
    pub fn table_name(&self) -> &str {
        let start = self.resource_len + ROW_KEY_SEPARATOR.len();
        self.key.get(start..start + self.table_len).unwrap_or_default()
    }

    /// The primary-key value (composite keys are joined by `_` by the client).
    pub fn pk(&self) -> &str {
        let start = self.resource_len + self.table_len + 2 * ROW_KEY_SEPARATOR.len();
        self.key.get(start..).unwrap_or_default()
    }
}

impl fmt::Debug for RowLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowLock")
            .field("resource_id", &self.resource_id())
            .field("table_name", &self.table_name())
            .field("pk", &self.pk())
            .finish()
    }
}

impl fmt::Display for RowLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// Parses a client `lockKey` (`table:pk1,pk2;table2:pk3`) into row locks of `resource_id`,
/// exactly as Seata does.
///
/// * groups are split on `;`; a group without `:` stops parsing entirely (rows collected so far
///   are kept);
/// * the table is the text before the **first** `:`, the pks the text after; a blank pk part stops
///   parsing entirely, and so does a pk part made only of commas (Java's `split` drops trailing
///   empty items, leaving none);
/// * pk items are split on `,`; blank items are skipped; nothing is trimmed;
/// * duplicate row keys are removed, the first occurrence is kept.
///
/// The result can be as large as the input allows; use [`parse_lock_key_limited`] on untrusted
/// input.
pub fn parse_lock_key(resource_id: &str, lock_key: &str) -> Vec<RowLock> {
    let mut rows = Vec::new();
    let _complete = parse_into(resource_id, lock_key, usize::MAX, &mut rows);
    rows
}

/// [`parse_lock_key`] that gives up with [`LockError::TooManyRows`] as soon as more than `limit`
/// distinct rows have been found, so a huge lock key costs at most `limit` row allocations.
pub fn parse_lock_key_limited(resource_id: &str, lock_key: &str, limit: usize) -> Result<Vec<RowLock>, LockError> {
    let mut rows = Vec::new();
    if parse_into(resource_id, lock_key, limit, &mut rows) {
        Ok(rows)
    } else {
        Err(LockError::TooManyRows { requested: None, limit })
    }
}

/// Appends the rows of `lock_key` to `rows`; false if more than `limit` distinct rows were found
/// (parsing stops there).
fn parse_into(resource_id: &str, lock_key: &str, limit: usize, rows: &mut Vec<RowLock>) -> bool {
    let mut seen: HashSet<Arc<str>> = HashSet::new();
    for group in java_split(lock_key, GROUP_SEPARATOR) {
        let Some((table, pks)) = group.split_once(TABLE_SEPARATOR) else {
            return true;
        };
        if is_java_blank(pks) {
            return true;
        }
        let items = java_split(pks, PK_SEPARATOR);
        if items.is_empty() {
            return true;
        }
        for pk in items {
            if is_java_blank(pk) {
                continue;
            }
            let row = RowLock::new(resource_id, table, pk);
            if seen.insert(Arc::clone(row.shared_key())) {
                if rows.len() >= limit {
                    return false;
                }
                rows.push(row);
            }
        }
    }
    true
}

/// Java's `String.split(sep)` for a one-character, non-regex separator: trailing empty items are
/// dropped, and a string without the separator yields itself (even when empty).
fn java_split(s: &str, sep: char) -> Vec<&str> {
    if !s.contains(sep) {
        return vec![s];
    }
    let mut items: Vec<&str> = s.split(sep).collect();
    while items.last().is_some_and(|item| item.is_empty()) {
        items.pop();
    }
    items
}

/// Seata's `StringUtils.isBlank`: empty, or only characters Java's `Character.isWhitespace`
/// accepts.
fn is_java_blank(s: &str) -> bool {
    s.chars().all(is_java_whitespace)
}

/// Java's `Character.isWhitespace`: Unicode space separators except the no-break ones (U+00A0,
/// U+2007, U+202F), line and paragraph separators, and the ASCII controls U+0009–U+000D,
/// U+001C–U+001F. Unlike Rust's `char::is_whitespace` it excludes U+0085 and the no-break spaces.
fn is_java_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{0009}'..='\u{000D}'
            | '\u{001C}'..='\u{001F}'
            | ' '
            | '\u{1680}'
            | '\u{2000}'..='\u{2006}'
            | '\u{2008}'..='\u{200A}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{205F}'
            | '\u{3000}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RES: &str = "jdbc:mysql://db:3306/orders";

    /// `(table, pk)` pairs of parsed rows, for compact assertions.
    fn parts(lock_key: &str) -> Vec<(String, String)> {
        parse_lock_key(RES, lock_key).iter().map(|r| (r.table_name().to_owned(), r.pk().to_owned())).collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(t, p)| ((*t).to_owned(), (*p).to_owned())).collect()
    }

    #[test]
    fn row_key_joins_with_triple_caret() {
        assert_eq!(row_key("r", "t", "1"), "r^^^t^^^1");
        let row = RowLock::new(RES, "t_order", "1_a");
        assert_eq!(row.row_key(), format!("{RES}^^^t_order^^^1_a"));
        assert_eq!(row.resource_id(), RES);
        assert_eq!(row.table_name(), "t_order");
        assert_eq!(row.pk(), "1_a");
        assert_eq!(row.to_string(), row.row_key());
    }

    #[test]
    fn parts_survive_separators_inside_names() {
        let row = RowLock::new("a^^^b", "", "c^^^d");
        assert_eq!(row.resource_id(), "a^^^b");
        assert_eq!(row.table_name(), "");
        assert_eq!(row.pk(), "c^^^d");
        // Different parts, same row key: the same row as far as locking is concerned.
        assert_eq!(RowLock::new("a", "b^^^c", "d").row_key(), RowLock::new("a^^^b", "c", "d").row_key());
    }

    #[test]
    fn composite_keys_stay_one_row_each() {
        assert_eq!(parts("t_order:1_a,2_b"), pairs(&[("t_order", "1_a"), ("t_order", "2_b")]));
    }

    #[test]
    fn several_tables_in_order() {
        assert_eq!(parts("t_order:1,2;t_item:7"), pairs(&[("t_order", "1"), ("t_order", "2"), ("t_item", "7")]));
    }

    #[test]
    fn same_table_twice() {
        assert_eq!(parts("t:1;u:5;t:2"), pairs(&[("t", "1"), ("u", "5"), ("t", "2")]));
    }

    #[test]
    fn group_without_colon_stops_everything() {
        assert_eq!(parts("t:1;garbage;u:2"), pairs(&[("t", "1")]));
        assert_eq!(parts(";t:1"), pairs(&[]));
        assert_eq!(parts("t:1;;u:2"), pairs(&[("t", "1")]));
        assert_eq!(parts("nocolon"), pairs(&[]));
        assert_eq!(parts(""), pairs(&[]));
    }

    #[test]
    fn first_colon_splits_table_from_pks() {
        assert_eq!(parts("t:a:b,c"), pairs(&[("t", "a:b"), ("t", "c")]));
        assert_eq!(parts(":1"), pairs(&[("", "1")]));
    }

    #[test]
    fn blank_pk_part_stops_everything() {
        assert_eq!(parts("t:1;u:;v:3"), pairs(&[("t", "1")]));
        assert_eq!(parts("t:1;u: \t;v:3"), pairs(&[("t", "1")]));
    }

    #[test]
    fn pk_part_of_only_commas_stops_everything() {
        // Java: ",,".split(",") is empty, and Seata returns on an empty pk array.
        assert_eq!(parts("t:1;u:,,;v:3"), pairs(&[("t", "1")]));
        // ", ," keeps a blank item, so parsing goes on.
        assert_eq!(parts("t:1;u:, ,;v:3"), pairs(&[("t", "1"), ("v", "3")]));
    }

    #[test]
    fn blank_items_are_skipped_not_trimmed() {
        assert_eq!(parts("t:1,, ,2, 3 ,"), pairs(&[("t", "1"), ("t", "2"), ("t", " 3 ")]));
        assert_eq!(parts(" t :1"), pairs(&[(" t ", "1")]));
    }

    #[test]
    fn trailing_semicolons_are_ignored() {
        assert_eq!(parts("t:1;;;"), pairs(&[("t", "1")]));
    }

    #[test]
    fn duplicates_keep_the_first() {
        assert_eq!(parts("t:1,2,1;u:1;t:2,3"), pairs(&[("t", "1"), ("t", "2"), ("u", "1"), ("t", "3")]));
    }

    #[test]
    fn blank_means_java_whitespace() {
        // U+00A0 (no-break space) is not whitespace for Java: it is a pk.
        assert_eq!(parts("t:\u{a0}"), pairs(&[("t", "\u{a0}")]));
        // U+0085 (NEL) neither, although Rust calls it whitespace.
        assert_eq!(parts("t:\u{85}"), pairs(&[("t", "\u{85}")]));
        // U+001F (unit separator) and U+3000 (ideographic space) are.
        assert_eq!(parts("t:\u{1f}\u{3000};u:1"), pairs(&[]));
    }

    #[test]
    fn limited_parse_stops_past_the_limit() {
        let ok = parse_lock_key_limited(RES, "t:1,2,2,3", 3);
        assert_eq!(ok.map(|rows| rows.len()), Ok(3));
        let too_many = parse_lock_key_limited(RES, "t:1,2,3,4", 3);
        assert_eq!(too_many, Err(LockError::TooManyRows { requested: None, limit: 3 }));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_rows_are_well_formed(
            key in "[a-c:;, \u{a0}\u{3000}_^]{0,40}",
            res in "[a-z:^]{0,6}",
        ) {
            let rows = parse_lock_key(&res, &key);
            let mut seen = HashSet::new();
            for row in &rows {
                prop_assert!(!is_java_blank(row.pk()));
                prop_assert!(!row.table_name().contains(TABLE_SEPARATOR));
                prop_assert!(!row.table_name().contains(GROUP_SEPARATOR));
                prop_assert!(!row.pk().contains(PK_SEPARATOR));
                prop_assert_eq!(row.resource_id(), res.as_str());
                prop_assert_eq!(row.row_key(), row_key(&res, row.table_name(), row.pk()));
                prop_assert!(seen.insert(row.row_key().to_owned()), "duplicate {}", row);
            }
            prop_assert_eq!(parse_lock_key_limited(&res, &key, rows.len()), Ok(rows.clone()));
        }
    }
}
