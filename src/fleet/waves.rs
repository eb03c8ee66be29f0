//! A rollout's arithmetic, pure: the waves a selection is cut into (cumulative
//! sizes from `[rollout] waves`, canaries first), the error budget, and how many
//! customers may deploy at once while a failure budget holds (StackSets' strict
//! mode: never more than the failures still tolerated plus one).

use crate::config::Amount;

/// Cuts `names` (in run order: canaries first) into waves: wave i ends where
/// `sizes[i]` of the whole selection ends. Sizes are cumulative; one smaller than
/// the wave before it (a count after a percentage of a large selection) or equal to
/// it adds nothing and is left out, so no wave is empty; the last wave takes the
/// rest whatever the sizes say. An empty selection has no wave.
pub(crate) fn plan<T: Clone>(names: &[T], sizes: &[Amount]) -> Vec<Vec<T>> {
    let total = names.len();
    let mut waves = Vec::new();
    let mut done = 0;
    for (i, size) in sizes.iter().enumerate() {
        let last = i + 1 == sizes.len();
        let end = if last { total } else { size.of(total).max(1).min(total) };
        if end > done {
            waves.push(names[done..end].to_vec());
            done = end;
        }
    }
    if done < total {
        waves.push(names[done..].to_vec());
    }
    waves
}

/// Customers at once within a wave: `parallel`, but never more than the failures
/// still tolerated plus one (a wave that starts with a spent budget deploys one at
/// a time; one failure more halts it).
pub(crate) fn concurrency(parallel: usize, budget_left: usize) -> usize {
    parallel.max(1).min(budget_left.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:02}")).collect()
    }

    fn sizes(waves: &[Vec<String>]) -> Vec<usize> {
        waves.iter().map(Vec::len).collect()
    }

    #[test]
    fn twenty_customers_in_one_then_a_quarter_then_the_rest() {
        let w = plan(&names(20), &[Amount::Count(1), Amount::Percent(25.0), Amount::Percent(100.0)]);
        assert_eq!(sizes(&w), [1, 4, 15]);
        assert_eq!(w[0], ["c00"], "the first in run order (the canary) is the first wave");
        assert_eq!(w.concat(), names(20), "every customer once, in run order");
    }

    #[test]
    fn cumulative_percentages_round_up_and_never_repeat_a_customer() {
        // 1%, 10%, 20%, 100% of 45: 1, 5, 9, 45.
        let w = plan(&names(45), &[Amount::Percent(1.0), Amount::Percent(10.0), Amount::Percent(20.0), Amount::Percent(100.0)]);
        assert_eq!(sizes(&w), [1, 4, 4, 36]);
        assert_eq!(w.concat(), names(45));
    }

    #[test]
    fn small_selections_have_fewer_waves_and_none_empty() {
        let s = [Amount::Count(1), Amount::Percent(25.0), Amount::Percent(100.0)];
        assert_eq!(sizes(&plan(&names(1), &s)), [1]);
        assert_eq!(sizes(&plan(&names(2), &s)), [1, 1]);
        assert_eq!(sizes(&plan(&names(4), &s)), [1, 3], "25% of 4 is the 1 the first wave already took");
        assert!(plan::<String>(&[], &s).is_empty());
        // A count larger than the selection: everything in that wave.
        assert_eq!(sizes(&plan(&names(3), &[Amount::Count(10), Amount::Percent(100.0)])), [3]);
        // A count after a percentage that already passed it adds nothing.
        assert_eq!(sizes(&plan(&names(40), &[Amount::Percent(50.0), Amount::Count(5), Amount::Percent(100.0)])), [20, 20]);
        // A tiny percentage still deploys someone first.
        assert_eq!(sizes(&plan(&names(10), &[Amount::Percent(0.1), Amount::Percent(100.0)])), [1, 9]);
    }

    #[test]
    fn concurrency_is_the_budget_left_plus_one_at_most() {
        assert_eq!(concurrency(4, 0), 1);
        assert_eq!(concurrency(4, 1), 2);
        assert_eq!(concurrency(4, 10), 4);
        assert_eq!(concurrency(0, 10), 1);
        assert_eq!(concurrency(8, usize::MAX), 8);
    }
}
