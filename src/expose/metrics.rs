//! A family's members as metrics: each float series, each native histogram, and the series
//! of each classic histogram or summary together, as the formats that write a histogram or a
//! summary as one metric (protobuf, OpenMetrics 2.0) need them.

use crate::expose::family::{grouping_labels, is_float_text};
use crate::expose::groups::FamilyGroup;
use crate::store::native::NativeHistogram;
use crate::store::SeriesView;

/// One metric of a family, as the formats that write a histogram or summary as one metric
/// (protobuf, OpenMetrics 2.0) see it.
pub enum Item<'s> {
    /// A float series: a counter, gauge or untyped value.
    Float(&'s SeriesView),
    /// A series whose newest sample is a native histogram.
    Native(&'s SeriesView, &'s NativeHistogram),
    /// The `_bucket`, `_sum` and `_count` series of one classic histogram, or the quantile,
    /// `_sum` and `_count` series of one summary.
    Run(&'s [&'s SeriesView]),
}

pub fn item_of<'s>(group: &FamilyGroup<'s>, series: &'s SeriesView) -> Item<'s> {
    match group.snapshot.histogram_of(series) {
        Some(histogram) => Item::Native(series, histogram),
        None => Item::Float(series),
    }
}

/// The members of a histogram or summary family as metrics: each native histogram alone, and
/// the classic series grouped by their labels without `le` and `quantile` (the family's order
/// puts them side by side, see [`crate::expose::family::compare_in_family`]).
pub fn runs<'s>(group: &'s FamilyGroup<'s>) -> Vec<Item<'s>> {
    let mut items = Vec::new();
    let mut start = 0;
    let members = &group.members;
    while start < members.len() {
        if let Some(histogram) = group.snapshot.histogram_of(members[start]) {
            items.push(Item::Native(members[start], histogram));
            start += 1;
            continue;
        }
        let mut end = start + 1;
        while end < members.len()
            && !group.is_native(members[end])
            && grouping_labels(members[end]).eq(grouping_labels(members[start]))
        {
            end += 1;
        }
        items.push(Item::Run(&members[start..end]));
        start = end;
    }
    items
}

/// The value of the member whose shown name is the family's with `suffix`.
pub fn member_value(group: &FamilyGroup, members: &[&SeriesView], suffix: &str) -> Option<f64> {
    members
        .iter()
        .find(|s| group.shown_name(s).strip_prefix(group.name.as_str()) == Some(suffix))
        .map(|s| s.value)
}

pub fn bound_of(series: &SeriesView, label: &str) -> Option<f64> {
    let (_, text) = series.labels().find(|(name, _)| *name == label)?;
    is_float_text(text).then(|| text.parse().ok()).flatten()
}
