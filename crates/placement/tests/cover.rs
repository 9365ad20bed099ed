//! Minimum cover against brute force: every cover covers, exact answers are optimal, and the
//! solver is never worse than plain greedy.

use op_placement::cover::{covers, greedy, solve, CoverProblem, Limits, Method};
use proptest::prelude::*;

/// The optimum by enumerating subsets by size (small problems only).
fn brute_force(p: &CoverProblem) -> usize {
    let m = p.sets.len();
    for k in 0..=m {
        let mut idx: Vec<usize> = (0..k).collect();
        loop {
            if covers(p, &idx) {
                return k;
            }
            // Next combination of k out of m.
            let mut i = k;
            while i > 0 && idx[i - 1] == m - k + i - 1 {
                i -= 1;
            }
            if i == 0 {
                break;
            }
            idx[i - 1] += 1;
            for j in i..k {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    m
}

fn problem() -> impl Strategy<Value = CoverProblem> {
    (1usize..24, 1usize..12).prop_flat_map(|(elements, sets)| {
        proptest::collection::vec(proptest::collection::vec(0..elements as u32, 0..6), sets)
            .prop_map(move |sets| CoverProblem { elements, sets })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn exact_on_small_problems_and_never_worse_than_greedy(p in problem()) {
        let c = solve(&p, Limits::default());
        prop_assert!(covers(&p, &c.chosen));
        let opt = brute_force(&p);
        prop_assert_eq!(c.method, Method::Exact);
        prop_assert_eq!(c.chosen.len(), opt);
        prop_assert!(c.lower_bound <= opt);
        prop_assert!(c.chosen.len() <= greedy(&p).len());
        // Uncovered elements are exactly those no candidate serves.
        for e in 0..p.elements as u32 {
            prop_assert_eq!(c.uncovered.contains(&e), !p.sets.iter().any(|s| s.contains(&e)));
        }
    }

    /// With the exact solver off, the greedy path still covers, stays within its own bound's
    /// reach of the optimum, and never loses to plain greedy.
    #[test]
    fn greedy_path_is_valid_and_bounded(p in problem()) {
        let c = solve(&p, Limits { exact_sets: 0, lp_bound_sets: 0 });
        prop_assert!(covers(&p, &c.chosen));
        let opt = brute_force(&p);
        prop_assert!(c.lower_bound <= opt, "the bound {} is above the optimum {}", c.lower_bound, opt);
        prop_assert!(c.chosen.len() >= opt);
        prop_assert!(c.chosen.len() <= greedy(&p).len());
    }
}

/// Found by `greedy_path_is_valid_and_bounded` in CI: greedy after the reductions took one
/// candidate more than plain greedy here.
#[test]
fn the_greedy_path_is_never_worse_than_plain_greedy() {
    let sets: Vec<Vec<u32>> = vec![vec![4, 3, 9], vec![8, 5], vec![10, 8, 2, 4], vec![10, 2, 7], vec![6, 4], vec![9, 5], vec![0, 7], vec![6, 7, 3], vec![], vec![0, 3]];
    let p = CoverProblem { elements: 11, sets };
    let c = solve(&p, Limits { exact_sets: 0, lp_bound_sets: 0 });
    assert!(covers(&p, &c.chosen));
    assert!(c.chosen.len() <= greedy(&p).len(), "{:?} against greedy's {:?}", c.chosen, greedy(&p));
}

/// The classic instance where greedy takes one set too many: two halves and a row of sets
/// of doubling size that each take a little more of both halves.
#[test]
fn beats_greedy_where_greedy_is_known_to_lose() {
    // Elements 0..14: halves A = 0..7 and B = 7..14. Candidates: A, B, and C1 = {0,7},
    // C2 = {1,2,8,9}, C3 = {3,4,5,6,10,11,12,13}: greedy takes C3, C2, C1 (3); the optimum is A, B.
    let p = CoverProblem {
        elements: 14,
        sets: vec![(0..7).collect(), (7..14).collect(), vec![0, 7], vec![1, 2, 8, 9], vec![3, 4, 5, 6, 10, 11, 12, 13]],
    };
    assert_eq!(greedy(&p).len(), 3);
    let c = solve(&p, Limits::default());
    assert_eq!(c.chosen, vec![0, 1]);
    assert_eq!((c.lower_bound, c.method, c.gap_pct()), (2, Method::Exact, 0.0));
    // Without the integer program, the reductions (cells served by the same edges count once)
    // lead greedy to the optimum, and the packing bound proves it.
    let g = solve(&p, Limits { exact_sets: 0, lp_bound_sets: 0 });
    assert_eq!((g.chosen.len(), g.lower_bound, g.method), (2, 2, Method::Exact));
}

/// Components are solved apart: many small regions solve exactly however many there are.
#[test]
fn independent_regions_are_solved_apart() {
    let mut sets = Vec::new();
    let regions = 200u32;
    for r in 0..regions {
        let base = r * 10;
        for k in 0..6 {
            sets.push((0..4).map(|i| base + (k + i * 2) % 10).collect::<Vec<u32>>());
        }
    }
    let p = CoverProblem { elements: (regions * 10) as usize, sets };
    let c = solve(&p, Limits { exact_sets: 12, lp_bound_sets: 12 });
    assert!(covers(&p, &c.chosen));
    assert_eq!(c.method, Method::Exact, "every region is small enough to solve exactly");
    assert_eq!(c.chosen.len(), c.lower_bound);
}
