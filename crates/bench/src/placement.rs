//! The placement benchmark's synthetic operator and its minimum-cover problems.
//!
//! Zones stand on a jittered grid over a 1,000 km square, with cloudlets and cells scattered
//! around each (the cover's candidates are zones; single-instance decisions choose cloudlets). The latency from a cell to a zone grows with distance (1 ms plus 1 ms per
//! 50 km, the shape of a metro-and-backbone network); a footprint is every cell within a radius
//! of a random centre; a zone can serve a cell when that latency is within the app's bound.

use std::time::Instant;

use anyhow::Result;
use op_placement::cover::{self, CoverProblem, Limits, Method};
use op_placement::decide::{self, Need, Point, Policy, Resources, Site, Sites};
use rand::{Rng, SeedableRng};

/// `placement` arguments.
#[derive(clap::Args)]
pub struct PlacementArgs {
    #[arg(long, default_value_t = 1000)]
    zones: usize,
    #[arg(long, default_value_t = 10_000)]
    cloudlets: usize,
    #[arg(long, default_value_t = 20_000)]
    cells: usize,
    /// Cover problems to solve.
    #[arg(long, default_value_t = 40)]
    problems: usize,
}

struct Operator {
    zones: Vec<(f64, f64)>,
    cells: Vec<(f64, f64)>,
}

fn operator(a: &PlacementArgs, rng: &mut rand::rngs::StdRng) -> Operator {
    let side = (a.zones as f64).sqrt().ceil() as usize;
    let step = 1000.0 / side as f64;
    let zones: Vec<(f64, f64)> = (0..a.zones)
        .map(|i| ((i % side) as f64 * step + rng.gen_range(0.0..step * 0.8), (i / side) as f64 * step + rng.gen_range(0.0..step * 0.8)))
        .collect();
    let cells = (0..a.cells)
        .map(|i| {
            let z = zones[i % zones.len()];
            (z.0 + rng.gen_range(-step..step), z.1 + rng.gen_range(-step..step))
        })
        .collect();
    Operator { zones, cells }
}

fn latency_ms(a: (f64, f64), b: (f64, f64)) -> f64 {
    1.0 + ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt() / 50.0
}

/// A footprint (cells within `radius_km` of a centre) and the zones serving its cells within
/// `bound_ms`, as a cover problem.
fn problem(op: &Operator, centre: (f64, f64), radius_km: f64, bound_ms: f64) -> CoverProblem {
    let cells: Vec<(f64, f64)> = op.cells.iter().copied().filter(|c| latency_ms(*c, centre) - 1.0 <= radius_km / 50.0).collect();
    let reach = (bound_ms - 1.0) * 50.0;
    let sets = op
        .zones
        .iter()
        .filter(|z| latency_ms(**z, centre) - 1.0 <= (radius_km + reach) / 50.0)
        .map(|z| cells.iter().enumerate().filter(|(_, c)| latency_ms(**c, *z) <= bound_ms).map(|(i, _)| i as u32).collect())
        .filter(|s: &Vec<u32>| !s.is_empty())
        .collect();
    CoverProblem { elements: cells.len(), sets }
}

/// How long the exact reference may take per problem.
const REFERENCE_SECS: u64 = 20;

/// Writes `p` as text: the element count, then one line of elements per candidate.
fn write_problem(p: &CoverProblem, path: &std::path::Path) -> Result<()> {
    let mut out = format!("{}\n", p.elements);
    for s in &p.sets {
        out.push_str(&s.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
        out.push('\n');
    }
    Ok(std::fs::write(path, out)?)
}

/// Reads what [`write_problem`] wrote.
fn read_problem(path: &std::path::Path) -> Result<CoverProblem> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let elements = lines.next().unwrap_or("0").trim().parse()?;
    let sets = lines.map(|l| l.split_whitespace().map(str::parse).collect::<Result<Vec<u32>, _>>()).collect::<Result<_, _>>()?;
    Ok(CoverProblem { elements, sets })
}

/// `exact-cover FILE`: prints the optimum's size (every component solved exactly).
pub fn exact_cover(path: &std::path::Path) -> Result<()> {
    let p = read_problem(path)?;
    let c = cover::solve(&p, Limits { exact_sets: usize::MAX, lp_bound_sets: usize::MAX });
    anyhow::ensure!(c.method == Method::Exact && cover::covers(&p, &c.chosen), "not solved exactly");
    println!("{}", c.chosen.len());
    Ok(())
}

/// The optimum of `p` from a child `op-bench exact-cover`, or None past [`REFERENCE_SECS`].
fn reference(p: &CoverProblem) -> Result<Option<usize>> {
    let dir = std::env::temp_dir().join(format!("op-bench-cover-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("problem.txt");
    write_problem(p, &file)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("exact-cover")
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(REFERENCE_SECS);
    loop {
        if let Some(status) = child.try_wait()? {
            let _ = std::fs::remove_dir_all(&dir);
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                std::io::Read::read_to_string(&mut o, &mut out)?;
            }
            return Ok(status.success().then(|| out.trim().parse().ok()).flatten());
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Runs (a) of the placement benchmark: prints one line per problem on stderr and returns
/// (mean gap to the exact optimum in %, mean ms per cover, problems compared).
pub fn covers(a: &PlacementArgs) -> Result<(f64, f64, usize)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let op = operator(a, &mut rng);
    let (mut gaps, mut times) = (Vec::new(), Vec::new());
    for i in 0..a.problems {
        let centre = (rng.gen_range(100.0..900.0), rng.gen_range(100.0..900.0));
        let radius = rng.gen_range(50.0..300.0);
        let bound = rng.gen_range(1.4..2.6);
        let p = problem(&op, centre, radius, bound);
        let t = Instant::now();
        let c = cover::solve(&p, Limits::default());
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        times.push(ms);
        anyhow::ensure!(cover::covers(&p, &c.chosen), "problem {i}: not a cover");
        // The reference: the exact solver with no size limit, in a child process given
        // REFERENCE_SECS (microlp can run for hours on a large component); problems it does
        // not finish in time are not compared.
        let t = Instant::now();
        let exact = reference(&p)?;
        let exact_ms = t.elapsed().as_secs_f64() * 1000.0;
        let (gap, exact_n) = match exact {
            Some(n) => {
                let g = (c.chosen.len() as f64 - n as f64) / n.max(1) as f64 * 100.0;
                gaps.push(g);
                (format!("{g:.1}%"), n.to_string())
            }
            None => ("n/a".into(), "unfinished".into()),
        };
        eprintln!(
            "cover {i}: {} cells, {} candidates -> {} edges ({:?}, bound {}) in {ms:.1} ms; exact {exact_n} in {exact_ms:.0} ms; gap {gap}",
            p.elements,
            p.sets.len(),
            c.chosen.len(),
            c.method,
            c.lower_bound,
        );
    }
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    Ok((mean(&gaps), mean(&times), gaps.len()))
}

/// Maps the benchmark's kilometre square onto degrees around France, for sites' locations.
fn to_point(xy: (f64, f64)) -> Point {
    Point { lat: 43.0 + xy.1 / 111.0, lon: -1.0 + xy.0 / 80.0 }
}

/// Runs (b): single-instance decisions on one thread for about `secs` seconds over
/// `cloudlets` sites; returns decisions per second (and checks each decided).
pub fn decisions(a: &PlacementArgs, secs: f64) -> Result<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let op = operator(a, &mut rng);
    let sites: Vec<Site> = (0..a.cloudlets)
        .map(|i| {
            let z = i % op.zones.len();
            let (x, y) = op.zones[z];
            Site {
                id: i as u32,
                zone: z as u32,
                region: (z % 8) as u32,
                location: to_point((x + rng.gen_range(-5.0..5.0), y + rng.gen_range(-5.0..5.0))),
                free: Resources { millicpus: rng.gen_range(0..32_000), memory_mb: rng.gen_range(0..65_536), disk_gb: 500, gpus: rng.gen_range(0..3) },
                flavors: (0..4).filter(|_| rng.gen_bool(0.7)).collect(),
                services: rng.gen_range(0..4),
                available: rng.gen_bool(0.97),
                mobility: rng.gen_bool(0.8),
                edge_load: rng.gen_range(0.0..1.0),
                network_load: rng.gen_range(0.0..1.0),
                forecast: rng.gen_range(0.0..1.0),
            }
        })
        .collect();
    let index = Sites::new(sites);
    let policy = Policy::default();
    let needs: Vec<Need> = (0..4096)
        .map(|k| Need {
            app: k % 50,
            class: k % 4,
            resources: Resources { millicpus: rng.gen_range(250..4000), memory_mb: rng.gen_range(128..8192), disk_gb: 10, gpus: u32::from(rng.gen_bool(0.1)) },
            flavor: rng.gen_bool(0.5).then(|| rng.gen_range(0..4)),
            services: if rng.gen_bool(0.2) { 1 } else { 0 },
            regions: if rng.gen_bool(0.3) { (0..4).collect() } else { Default::default() },
            near: Some(to_point((rng.gen_range(0.0..1000.0), rng.gen_range(0.0..1000.0)))),
            max_latency_ms: Some(rng.gen_range(3.0..8.0)),
            mobility: rng.gen_bool(0.2),
            ..Need::default()
        })
        .collect();
    let start = Instant::now();
    let (mut n, mut placed) = (0usize, 0usize);
    while start.elapsed().as_secs_f64() < secs {
        for k in 0..256 {
            let need = &needs[(n + k) % needs.len()];
            let near = need.near;
            let latency = |s: &Site| near.map(|p| 1.0 + p.km(s.location) / 50.0);
            if decide::decide(&index, need, &policy, &latency).chosen().is_some() {
                placed += 1;
            }
        }
        n += 256;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    eprintln!("decisions: {n} in {:.1} s over {} cloudlets, {placed} placed", start.elapsed().as_secs_f64(), a.cloudlets);
    anyhow::ensure!(placed > n / 2, "most needs should be placeable");
    Ok(rate)
}
