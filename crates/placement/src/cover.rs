//! Minimum edge cover (OPG.02 instantiation strategy: "the minimum number of edges that covers
//! the footprint within the latency bound").
//!
//! The caller turns geography into sets: the elements are the demand points of the footprint
//! (cells), and each candidate edge is the set of elements it serves within the app's latency
//! bound. [`solve`] then picks the fewest candidates covering every coverable element:
//!
//! 1. **Reduction**: an element only one candidate serves forces that candidate; candidates left
//!    with nothing to cover are dropped; repeated until nothing changes.
//! 2. **Decomposition**: what remains splits into independent components (candidates sharing
//!    no element never interact), each solved on its own: regions far apart cost their sum, not
//!    their product.
//! 3. **Exact** for a component of at most [`Limits::exact_sets`] candidates: an integer program
//!    (minimise the number of chosen candidates subject to every element covered once or more),
//!    solved by good_lp's pure-Rust `microlp` backend; for a larger component:
//! 4. **Greedy with local improvement**: the candidate covering most uncovered elements first
//!    (ties to the lower index), then redundant candidates removed (largest first) and pairs
//!    replaced by one candidate that covers all they alone covered, until neither helps; then,
//!    while the cover is above its lower bound, a large-neighbourhood search: a few chosen
//!    candidates near each other are freed and what only they covered is covered again by the
//!    integer program, kept when it needs fewer.
//!
//! Every cover carries a lower bound, so its distance from the optimum is known: the optimum
//! itself for exact components, else the larger of the LP relaxation (rounded up, when the
//! component is small enough to solve it) and a packing bound (elements no two of which share a
//! candidate each need their own).
//!
//! Deterministic: the same problem gives the same cover.

use std::collections::BTreeSet;

use good_lp::{constraint, microlp, variable, variables, Expression, ResolutionError, Solution, SolverModel, Variable};

/// A minimum-cover problem.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoverProblem {
    /// Elements are `0..elements`.
    pub elements: usize,
    /// Candidate `j` covers the elements `sets[j]`.
    pub sets: Vec<Vec<u32>>,
}

/// How far the exact solver is trusted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Components with at most this many candidates (after reduction) are solved exactly.
    pub exact_sets: usize,
    /// Components with at most this many candidates get the LP-relaxation lower bound.
    pub lp_bound_sets: usize,
}

impl Default for Limits {
    /// Exact up to 120 candidates per component; LP bounds up to 400 (both solve in tens of
    /// milliseconds with microlp on this project's benchmark instances).
    fn default() -> Self {
        Self { exact_sets: 120, lp_bound_sets: 400 }
    }
}

/// How a component was solved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Proven optimal (forced choices only, or the integer program).
    Exact,
    /// Greedy with local improvement.
    Greedy,
}

/// A cover and how good it is known to be.
#[derive(Clone, Debug, PartialEq)]
pub struct Cover {
    /// Chosen candidates, ascending.
    pub chosen: Vec<usize>,
    /// Elements no candidate serves (the footprint cannot be fully covered within the bound).
    pub uncovered: Vec<u32>,
    /// No cover of the coverable elements has fewer candidates than this.
    pub lower_bound: usize,
    /// Exact when every component was solved exactly.
    pub method: Method,
}

impl Cover {
    /// How far above the lower bound the cover may be, in percent (0 when proven optimal).
    pub fn gap_pct(&self) -> f64 {
        if self.lower_bound == 0 {
            return 0.0;
        }
        (self.chosen.len() as f64 - self.lower_bound as f64) / self.lower_bound as f64 * 100.0
    }
}

/// Solves `p` (see the module documentation).
pub fn solve(p: &CoverProblem, limits: Limits) -> Cover {
    let sets: Vec<Vec<u32>> = p.sets.iter().map(|s| s.iter().copied().filter(|e| (*e as usize) < p.elements).collect::<BTreeSet<u32>>().into_iter().collect()).collect();
    let mut covered_by: Vec<Vec<usize>> = vec![Vec::new(); p.elements];
    for (j, s) in sets.iter().enumerate() {
        for e in s {
            covered_by[*e as usize].push(j);
        }
    }
    let uncovered: Vec<u32> = (0..p.elements).filter(|e| covered_by[*e].is_empty()).map(|e| e as u32).collect();
    let (forced, left) = reduce(&sets, &covered_by);
    let mut chosen = forced.clone();
    let mut lower_bound = forced.len();
    let mut method = Method::Exact;
    for comp in components(&sets, &left) {
        let sub = comp.problem(&sets);
        let (picked, lb, m) = solve_component(&sub, limits);
        chosen.extend(picked.into_iter().map(|j| comp.sets[j]));
        lower_bound += lb;
        if m == Method::Greedy {
            method = Method::Greedy;
        }
    }
    chosen.sort_unstable();
    if method == Method::Greedy {
        // Greedy after the reductions is usually the better greedy, not always (greedy is not
        // monotone: a forced choice can steer its later picks worse); the plain one is kept
        // when it takes fewer candidates, so that the promise below holds.
        let plain = greedy(p);
        if plain.len() < chosen.len() {
            chosen = plain;
        }
    }
    Cover { chosen, uncovered, lower_bound, method }
}

/// The plain greedy cover (most new elements first, ties to the lower index), without
/// reduction or improvement: the baseline [`solve`] must never be worse than.
pub fn greedy(p: &CoverProblem) -> Vec<usize> {
    let sets: Vec<Vec<u32>> = p.sets.iter().map(|s| s.iter().copied().filter(|e| (*e as usize) < p.elements).collect()).collect();
    let mut covered = vec![false; p.elements];
    let coverable: usize = {
        let mut any = vec![false; p.elements];
        sets.iter().flatten().for_each(|e| any[*e as usize] = true);
        any.iter().filter(|x| **x).count()
    };
    let mut done = 0;
    let mut chosen = Vec::new();
    while done < coverable {
        let gain = |s: &Vec<u32>| s.iter().filter(|e| !covered[**e as usize]).collect::<BTreeSet<_>>().len();
        let Some((j, g)) = sets.iter().enumerate().map(|(j, s)| (j, gain(s))).max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))) else { break };
        if g == 0 {
            break;
        }
        for e in &sets[j] {
            if !covered[*e as usize] {
                covered[*e as usize] = true;
                done += 1;
            }
        }
        chosen.push(j);
    }
    chosen.sort_unstable();
    chosen
}

/// Applies forced choices until none is left. Returns the forced candidates and, per element,
/// whether it still needs covering.
fn reduce(sets: &[Vec<u32>], covered_by: &[Vec<usize>]) -> (Vec<usize>, Vec<bool>) {
    let mut need: Vec<bool> = covered_by.iter().map(|c| !c.is_empty()).collect();
    let mut taken = vec![false; sets.len()];
    let mut forced = Vec::new();
    loop {
        let mut changed = false;
        for e in 0..need.len() {
            if !need[e] {
                continue;
            }
            // The candidates that can still help with e are all of its candidates; if only one
            // exists, it is in every cover.
            if let [only] = covered_by[e].as_slice() {
                if !taken[*only] {
                    taken[*only] = true;
                    forced.push(*only);
                    for x in &sets[*only] {
                        need[*x as usize] = false;
                    }
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    (forced, need)
}

/// A component: the candidates (original indices) and elements (original ids) it holds.
struct Component {
    sets: Vec<usize>,
    elements: Vec<u32>,
}

impl Component {
    /// The component as a problem of its own, renumbered from 0.
    fn problem(&self, sets: &[Vec<u32>]) -> CoverProblem {
        let index: std::collections::HashMap<u32, u32> = self.elements.iter().enumerate().map(|(i, e)| (*e, i as u32)).collect();
        CoverProblem {
            elements: self.elements.len(),
            sets: self.sets.iter().map(|j| sets[*j].iter().filter_map(|e| index.get(e).copied()).collect()).collect(),
        }
    }
}

/// Splits the elements still needed, and the candidates serving them, into components.
fn components(sets: &[Vec<u32>], need: &[bool]) -> Vec<Component> {
    // Union-find over elements, joined through every candidate.
    let mut parent: Vec<usize> = (0..need.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut useful = Vec::new();
    for (j, s) in sets.iter().enumerate() {
        let live: Vec<usize> = s.iter().map(|e| *e as usize).filter(|e| need[*e]).collect();
        if let Some(first) = live.first() {
            useful.push(j);
            for e in &live[1..] {
                let (a, b) = (find(&mut parent, *first), find(&mut parent, *e));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut by_root: std::collections::BTreeMap<usize, Component> = std::collections::BTreeMap::new();
    for (e, needed) in need.iter().enumerate() {
        if *needed {
            let r = find(&mut parent, e);
            by_root.entry(r).or_insert_with(|| Component { sets: Vec::new(), elements: Vec::new() }).elements.push(e as u32);
        }
    }
    for j in useful {
        if let Some(e) = sets[j].iter().find(|e| need[**e as usize]) {
            let r = find(&mut parent, *e as usize);
            if let Some(c) = by_root.get_mut(&r) {
                c.sets.push(j);
            }
        }
    }
    by_root.into_values().collect()
}

/// Solves one component: (chosen, lower bound, method).
fn solve_component(p: &CoverProblem, limits: Limits) -> (Vec<usize>, usize, Method) {
    let (forced, reduced, back) = simplify(p);
    let (picked, lb, method) = solve_reduced(&reduced, limits);
    let mut chosen: Vec<usize> = forced.iter().copied().chain(picked.into_iter().map(|j| back[j])).collect();
    chosen.sort_unstable();
    (chosen, forced.len() + lb, method)
}

fn solve_reduced(p: &CoverProblem, limits: Limits) -> (Vec<usize>, usize, Method) {
    if p.elements == 0 {
        return (Vec::new(), 0, Method::Exact);
    }
    let greedy_cover = improve(p, greedy(p));
    if p.sets.len() <= limits.exact_sets {
        if let Ok(exact) = integer_program(p, false) {
            let chosen: Vec<usize> = exact.iter().enumerate().filter(|(_, v)| **v > 0.5).map(|(j, _)| j).collect();
            if covers(p, &chosen) && chosen.len() <= greedy_cover.len() {
                let n = chosen.len();
                return (chosen, n, Method::Exact);
            }
        }
    }
    let mut lb = packing_bound(p);
    if p.sets.len() <= limits.lp_bound_sets {
        if let Ok(relaxed) = integer_program(p, true) {
            let v: f64 = relaxed.iter().sum();
            lb = lb.max((v - 1e-6).ceil().max(0.0) as usize);
        }
    }
    let improved = if lb < greedy_cover.len() { neighbourhoods(p, greedy_cover, limits) } else { greedy_cover };
    let n = improved.len();
    if lb >= n {
        return (improved, n, Method::Exact);
    }
    (improved, lb, Method::Greedy)
}

/// Candidates in a neighbourhood re-solved exactly at most.
const NEIGHBOURHOOD_SETS: usize = 90;
/// Chosen candidates freed together at most.
const NEIGHBOURHOOD_CHOSEN: usize = 10;

/// Large-neighbourhood search: for each chosen candidate, free it and the chosen candidates
/// near it (those sharing an element with a candidate that shares one with it), and cover
/// what only they covered again, exactly; keep the result when it needs fewer candidates.
/// Two passes at most, so the time stays bounded; each pass keeps the cover valid.
fn neighbourhoods(p: &CoverProblem, mut chosen: Vec<usize>, limits: Limits) -> Vec<usize> {
    if limits.exact_sets == 0 {
        return chosen;
    }
    let mut covered_by: Vec<Vec<usize>> = vec![Vec::new(); p.elements];
    for (j, s) in p.sets.iter().enumerate() {
        for e in s {
            covered_by[*e as usize].push(j);
        }
    }
    for _pass in 0..4 {
        let mut improved = false;
        let mut i = 0;
        while i < chosen.len() {
            let centre = chosen[i];
            i += 1;
            // Elements within two hops of the centre.
            let near: BTreeSet<usize> = p.sets[centre].iter().flat_map(|e| covered_by[*e as usize].iter().copied()).collect();
            let region: BTreeSet<u32> = near.iter().flat_map(|c| p.sets[*c].iter().copied()).collect();
            let mut group: Vec<(usize, usize)> = chosen
                .iter()
                .map(|k| (p.sets[*k].iter().filter(|e| region.contains(e)).count(), *k))
                .filter(|(n, _)| *n > 0)
                .collect();
            group.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            group.truncate(NEIGHBOURHOOD_CHOSEN);
            let group: BTreeSet<usize> = group.into_iter().map(|(_, k)| k).collect();
            if group.len() < 2 {
                continue;
            }
            // What only the group covers.
            let mut count = vec![0u32; p.elements];
            for k in chosen.iter().filter(|k| !group.contains(k)) {
                p.sets[*k].iter().for_each(|e| count[*e as usize] += 1);
            }
            let freed: Vec<u32> = group.iter().flat_map(|k| p.sets[*k].iter().copied()).filter(|e| count[*e as usize] == 0).collect::<BTreeSet<_>>().into_iter().collect();
            let cands: Vec<usize> = freed.iter().flat_map(|e| covered_by[*e as usize].iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
            let index: std::collections::HashMap<u32, u32> = freed.iter().enumerate().map(|(i, e)| (*e, i as u32)).collect();
            let sub = CoverProblem {
                elements: freed.len(),
                sets: cands.iter().map(|c| p.sets[*c].iter().filter_map(|e| index.get(e).copied()).collect()).collect(),
            };
            let (forced, reduced, back) = simplify(&sub);
            if forced.len() >= group.len() || reduced.sets.len() > NEIGHBOURHOOD_SETS {
                continue;
            }
            let Ok(x) = integer_program(&reduced, false) else { continue };
            let in_sub: Vec<usize> = forced.iter().copied().chain(x.iter().enumerate().filter(|(_, v)| **v > 0.5).map(|(j, _)| back[j])).collect();
            let picked: Vec<usize> = in_sub.iter().map(|j| cands[*j]).collect();
            if picked.len() < group.len() && covers(&sub, &in_sub) {
                chosen.retain(|k| !group.contains(k));
                chosen.extend(picked);
                chosen.sort_unstable();
                chosen.dedup();
                improved = true;
                i = 0;
            }
        }
        if !improved {
            break;
        }
    }
    chosen
}

/// A set of small integers as 64-bit words.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn subset_of(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }
    fn and(&self, other: &Bits) -> Bits {
        Bits(self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect())
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// The classic reductions, repeated until none applies; none changes the optimum's size:
/// - an element served by exactly one candidate forces it;
/// - an element whose candidates include all of another element's is covered whenever that
///   one is (identical elements collapse to one);
/// - a candidate whose remaining elements another candidate also covers is never needed
///   (of identical candidates the lower index stays).
///
/// Returns the forced candidates, the reduced problem, and each reduced candidate's index in
/// `p`.
fn simplify(p: &CoverProblem) -> (Vec<usize>, CoverProblem, Vec<usize>) {
    let m = p.sets.len();
    let mut rows: Vec<Bits> = vec![Bits::new(m); p.elements];
    for (j, s) in p.sets.iter().enumerate() {
        for e in s {
            rows[*e as usize].set(j);
        }
    }
    let mut need: Vec<bool> = rows.iter().map(|r| !r.is_empty()).collect();
    let mut alive = vec![true; m];
    let mut forced = Vec::new();
    loop {
        let mut changed = false;
        // Forced candidates.
        for e in 0..p.elements {
            if !need[e] {
                continue;
            }
            let live: Vec<usize> = (0..m).filter(|j| alive[*j] && rows[e].get(*j)).collect();
            if let [only] = live.as_slice() {
                forced.push(*only);
                alive[*only] = false;
                for x in &p.sets[*only] {
                    need[*x as usize] = false;
                }
                changed = true;
            }
        }
        // Dominated elements: first collapse identical rows, then drop supersets.
        let mut alive_bits = Bits::new(m);
        (0..m).filter(|j| alive[*j]).for_each(|j| alive_bits.set(j));
        let mut seen = std::collections::HashMap::new();
        let mut distinct: Vec<(usize, Bits)> = Vec::new();
        for e in 0..p.elements {
            if !need[e] {
                continue;
            }
            let r = rows[e].and(&alive_bits);
            if seen.insert(r.clone(), e).is_some() {
                need[e] = false;
                changed = true;
            } else {
                distinct.push((e, r));
            }
        }
        for a in 0..distinct.len() {
            if !need[distinct[a].0] {
                continue;
            }
            for b in 0..distinct.len() {
                if a != b && need[distinct[b].0] && distinct[b].1.subset_of(&distinct[a].1) {
                    need[distinct[a].0] = false;
                    changed = true;
                    break;
                }
            }
        }
        // Dominated candidates.
        let mut cols: Vec<(usize, Bits)> = Vec::new();
        for (j, live) in alive.iter_mut().enumerate() {
            if !*live {
                continue;
            }
            let mut c = Bits::new(p.elements);
            p.sets[j].iter().filter(|e| need[**e as usize]).for_each(|e| c.set(*e as usize));
            if c.is_empty() {
                *live = false;
                changed = true;
            } else {
                cols.push((j, c));
            }
        }
        for a in 0..cols.len() {
            for b in 0..cols.len() {
                let (ja, jb) = (cols[a].0, cols[b].0);
                if a == b || !alive[ja] || !alive[jb] || !cols[a].1.subset_of(&cols[b].1) {
                    continue;
                }
                // Strictly smaller, or identical and later: drop a.
                if cols[a].1 != cols[b].1 || ja > jb {
                    alive[ja] = false;
                    changed = true;
                    break;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let elements: Vec<usize> = (0..p.elements).filter(|e| need[*e]).collect();
    let index: std::collections::HashMap<usize, u32> = elements.iter().enumerate().map(|(i, e)| (*e, i as u32)).collect();
    let back: Vec<usize> = (0..m).filter(|j| alive[*j]).collect();
    let sets = back.iter().map(|j| p.sets[*j].iter().filter_map(|e| index.get(&(*e as usize)).copied()).collect()).collect();
    (forced, CoverProblem { elements: elements.len(), sets }, back)
}

/// The integer program (or, `relaxed`, its linear relaxation): one variable per candidate.
fn integer_program(p: &CoverProblem, relaxed: bool) -> Result<Vec<f64>, ResolutionError> {
    let mut vars = variables!();
    let x: Vec<Variable> = (0..p.sets.len())
        .map(|_| vars.add(if relaxed { variable().min(0).max(1) } else { variable().binary() }))
        .collect();
    let objective: Expression = x.iter().copied().sum();
    let mut covering: Vec<Expression> = vec![Expression::from(0); p.elements];
    for (j, s) in p.sets.iter().enumerate() {
        for e in s {
            covering[*e as usize] += x[j];
        }
    }
    let mut model = vars.minimise(objective).using(microlp);
    for c in covering {
        model = model.with(constraint!(c >= 1));
    }
    let sol = model.solve()?;
    Ok(x.iter().map(|v| sol.value(*v)).collect())
}

/// Whether `chosen` covers every element some candidate covers.
pub fn covers(p: &CoverProblem, chosen: &[usize]) -> bool {
    let mut coverable = vec![false; p.elements];
    let mut got = vec![false; p.elements];
    for s in &p.sets {
        s.iter().filter(|e| (**e as usize) < p.elements).for_each(|e| coverable[*e as usize] = true);
    }
    for j in chosen {
        if let Some(s) = p.sets.get(*j) {
            s.iter().filter(|e| (**e as usize) < p.elements).for_each(|e| got[*e as usize] = true);
        }
    }
    coverable.iter().zip(&got).all(|(c, g)| !c || *g)
}

/// Local improvement: drop redundant candidates (largest first, so small ones that are all
/// overlap go before the large ones they overlap), then replace two candidates by one that
/// covers everything only they covered; repeat until neither applies.
fn improve(p: &CoverProblem, mut chosen: Vec<usize>) -> Vec<usize> {
    let mut count = vec![0u32; p.elements];
    for j in &chosen {
        for e in &p.sets[*j] {
            count[*e as usize] += 1;
        }
    }
    loop {
        let mut changed = false;
        // Redundant: every element also covered by another chosen candidate.
        let mut order = chosen.clone();
        order.sort_by_key(|j| (p.sets[*j].len(), *j));
        for j in order {
            if p.sets[j].iter().all(|e| count[*e as usize] >= 2) {
                for e in &p.sets[j] {
                    count[*e as usize] -= 1;
                }
                chosen.retain(|x| *x != j);
                changed = true;
            }
        }
        // Two for one.
        'pairs: for a in 0..chosen.len() {
            for b in a + 1..chosen.len() {
                let (ja, jb) = (chosen[a], chosen[b]);
                let only: BTreeSet<u32> = p.sets[ja]
                    .iter()
                    .chain(&p.sets[jb])
                    .copied()
                    .filter(|e| {
                        let in_both = p.sets[ja].contains(e) && p.sets[jb].contains(e);
                        count[*e as usize] == if in_both { 2 } else { 1 }
                    })
                    .collect();
                let replacement = (0..p.sets.len()).find(|c| *c != ja && *c != jb && only.iter().all(|e| p.sets[*c].binary_search(e).is_ok()));
                if let Some(c) = replacement {
                    for e in p.sets[ja].iter().chain(&p.sets[jb]) {
                        count[*e as usize] -= 1;
                    }
                    for e in &p.sets[c] {
                        count[*e as usize] += 1;
                    }
                    chosen.retain(|x| *x != ja && *x != jb);
                    if !chosen.contains(&c) {
                        chosen.push(c);
                    } else {
                        for e in &p.sets[c] {
                            count[*e as usize] -= 1;
                        }
                    }
                    changed = true;
                    break 'pairs;
                }
            }
        }
        if !changed {
            break;
        }
    }
    chosen.sort_unstable();
    chosen
}

/// A packing lower bound: elements chosen greedily so that no two share a candidate; each
/// needs a candidate of its own.
fn packing_bound(p: &CoverProblem) -> usize {
    let mut covered_by: Vec<Vec<usize>> = vec![Vec::new(); p.elements];
    for (j, s) in p.sets.iter().enumerate() {
        for e in s {
            covered_by[*e as usize].push(j);
        }
    }
    // Elements served by few candidates first: they block few others.
    let mut order: Vec<usize> = (0..p.elements).filter(|e| !covered_by[*e].is_empty()).collect();
    order.sort_by_key(|e| (covered_by[*e].len(), *e));
    let mut used = vec![false; p.sets.len()];
    let mut n = 0;
    for e in order {
        if covered_by[e].iter().all(|j| !used[*j]) {
            covered_by[e].iter().for_each(|j| used[*j] = true);
            n += 1;
        }
    }
    n
}
