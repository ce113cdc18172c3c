//! Verification accuracy: genuine and impostor similarity scores, TAR at fixed FAR, best accuracy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path} line {line}: {detail}")]
    Csv { path: String, line: usize, detail: String },
    #[error("{0} has no pictures: give a folder with one subfolder of pictures per person, or a pairs CSV")]
    Empty(String),
    #[error("{0}: no header row with `group` and `person` columns")]
    NoGroupColumns(String),
}

/// Pictures and the pairs to compare among them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PairSet {
    pub pictures: Vec<PathBuf>,
    /// Indexes into `pictures`, and whether both show the same person.
    pub pairs: Vec<(usize, usize, bool)>,
    /// Whose each picture is (a number per person), when the set comes from folders of people.
    pub owners: Option<Vec<usize>>,
}

fn is_picture(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("jpg" | "jpeg" | "png"))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| EvalError::Read { path: dir.display().to_string(), detail: e.to_string() })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    Ok(paths)
}

impl PairSet {
    /// A folder with one subfolder per person: every pair of pictures, labelled by folder.
    pub fn from_folder(root: &Path) -> Result<Self, EvalError> {
        let people: Vec<PathBuf> = read_dir_sorted(root)?.into_iter().filter(|p| p.is_dir()).collect();
        Self::from_people(&people).map_err(|_| EvalError::Empty(root.display().to_string()))
    }

    /// One folder of pictures per person: every pair of pictures, labelled by folder.
    pub fn from_people(people: &[PathBuf]) -> Result<Self, EvalError> {
        let mut set = PairSet::default();
        let mut owners = Vec::new();
        for (person, dir) in people.iter().enumerate() {
            for picture in read_dir_sorted(dir)?.into_iter().filter(|p| is_picture(p)) {
                set.pictures.push(picture);
                owners.push(person);
            }
        }
        if set.pictures.is_empty() {
            let listed: Vec<String> = people.iter().map(|p| p.display().to_string()).collect();
            return Err(EvalError::Empty(listed.join(", ")));
        }
        for i in 0..owners.len() {
            for j in i + 1..owners.len() {
                set.pairs.push((i, j, owners[i] == owners[j]));
            }
        }
        set.owners = Some(owners);
        Ok(set)
    }

    /// A CSV of `first,second,label` rows (label Yes/No, true/false, 1/0, same/different),
    /// paths relative to the CSV; a header row is skipped.
    pub fn from_csv(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EvalError::Read { path: path.display().to_string(), detail: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut set = PairSet::default();
        let mut index_of = std::collections::HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if line.trim().is_empty() {
                continue;
            }
            let bad = |detail: &str| EvalError::Csv {
                path: path.display().to_string(),
                line: number + 1,
                detail: detail.to_owned(),
            };
            let [first, second, label] = fields.as_slice() else {
                return Err(bad("expected three fields: first picture, second picture, label"));
            };
            let same = match label.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "same" => true,
                "no" | "false" | "0" | "different" => false,
                _ if number == 0 => continue,
                _ => return Err(bad("the label must be Yes or No")),
            };
            let mut index = |name: &str| {
                let picture = base.join(name);
                *index_of.entry(picture.clone()).or_insert_with(|| {
                    set.pictures.push(picture);
                    set.pictures.len() - 1
                })
            };
            let (i, j) = (index(first), index(second));
            set.pairs.push((i, j, same));
        }
        if set.pairs.is_empty() {
            return Err(EvalError::Empty(path.display().to_string()));
        }
        Ok(set)
    }
}

/// A named set of pairs, reported on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub set: PairSet,
}

/// Reads a table of `group` and `person` columns, as CSV or as a Markdown table: person → group.
pub fn read_group_table(path: &Path) -> Result<HashMap<String, String>, EvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvalError::Read { path: path.display().to_string(), detail: e.to_string() })?;
    let cells = |line: &str| -> Vec<String> {
        let line = line.trim();
        let separator = if line.starts_with('|') { '|' } else { ',' };
        line.trim_matches('|').split(separator).map(|cell| cell.trim().to_ascii_lowercase()).collect()
    };
    let mut columns = None;
    let mut table = HashMap::new();
    for line in text.lines() {
        let row = cells(line);
        match columns {
            None => {
                let at = |name: &str| row.iter().position(|cell| cell == name);
                columns = at("group").zip(at("person"));
            }
            Some((group, person)) => match (row.get(group), row.get(person)) {
                (Some(group), Some(person)) if !group.is_empty() && !group.starts_with('-') => {
                    table.insert(person.clone(), group.clone());
                }
                _ => {}
            },
        }
    }
    if columns.is_none() {
        return Err(EvalError::NoGroupColumns(path.display().to_string()));
    }
    Ok(table)
}

impl Group {
    /// The groups of `sources`: each a group named after it, or, with a group table, the people
    /// of each folder split by their group (people the table does not list are `ungrouped`).
    pub fn from_sources(sources: &[PathBuf], table: Option<&HashMap<String, String>>) -> Result<Vec<Group>, EvalError> {
        let mut groups: Vec<Group> = Vec::new();
        for source in sources {
            let name = source.file_stem().map_or_else(|| source.display().to_string(), |n| n.to_string_lossy().into());
            match table.filter(|_| source.is_dir()) {
                None => {
                    let set = if source.is_dir() { PairSet::from_folder(source)? } else { PairSet::from_csv(source)? };
                    groups.push(Group { name, set });
                }
                Some(table) => {
                    let mut split: Vec<(String, Vec<PathBuf>)> = Vec::new();
                    for person in read_dir_sorted(source)?.into_iter().filter(|p| p.is_dir()) {
                        let key =
                            person.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
                        let group = table.get(&key).cloned().unwrap_or_else(|| "ungrouped".into());
                        match split.iter_mut().find(|(name, _)| *name == group) {
                            Some((_, people)) => people.push(person),
                            None => split.push((group, vec![person])),
                        }
                    }
                    // A folder of which the table lists nobody is one group, named after it.
                    let whole = split.len() == 1 && split[0].0 == "ungrouped";
                    for (group, people) in split {
                        let name = if whole { name.clone() } else { format!("{name}/{group}") };
                        groups.push(Group { name, set: PairSet::from_people(&people)? });
                    }
                }
            }
        }
        Ok(groups)
    }
}

/// Genuine and impostor scores of the door's own protocol: each person enrols their first
/// `enrolled` usable pictures, and each of their other pictures is a probe, scored against every
/// enrolled person by `score(gallery, probe)` (picture indexes). `usable` says which pictures have
/// a descriptor; people with no picture left to probe with are left out.
pub fn gallery_scores(
    owners: &[usize],
    enrolled: usize,
    usable: impl Fn(usize) -> bool,
    score: impl Fn(&[usize], usize) -> f32,
) -> (Vec<f32>, Vec<f32>) {
    let mut people: Vec<(usize, Vec<usize>)> = Vec::new();
    for (picture, &owner) in owners.iter().enumerate().filter(|(picture, _)| usable(*picture)) {
        match people.iter_mut().find(|(who, _)| *who == owner) {
            Some((_, pictures)) => pictures.push(picture),
            None => people.push((owner, vec![picture])),
        }
    }
    people.retain(|(_, pictures)| pictures.len() > enrolled);
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (owner, pictures) in &people {
        for &probe in &pictures[enrolled..] {
            for (other, gallery) in &people {
                let scored = score(&gallery[..enrolled], probe);
                if other == owner { genuine.push(scored) } else { impostor.push(scored) }
            }
        }
    }
    (genuine, impostor)
}

/// The operating point at one false-accept-rate target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OperatingPoint {
    pub far_target: f64,
    /// Accept when similarity ≥ threshold.
    pub threshold: f32,
    pub tar: f64,
    pub far: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub genuine: usize,
    pub impostor: usize,
    pub at_far_1_percent: OperatingPoint,
    pub at_far_0_1_percent: OperatingPoint,
    pub best_accuracy: f64,
    pub best_accuracy_threshold: f32,
    /// True and false accept rates at the threshold the door is configured with.
    pub at_configured_threshold: ThresholdRates,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ThresholdRates {
    pub threshold: f32,
    pub tar: f64,
    pub far: f64,
}

fn share(count: usize, of: usize) -> f64 {
    if of == 0 { 0.0 } else { count as f64 / of as f64 }
}

/// The lowest threshold whose false-accept rate stays within `far_target`.
fn operating_point(genuine: &[f32], impostor_desc: &[f32], far_target: f64) -> OperatingPoint {
    let allowed = (far_target * impostor_desc.len() as f64).floor() as usize;
    // Just above the first impostor score that would exceed the allowance.
    let threshold = impostor_desc.get(allowed).map_or(0.0, |score| score.next_up());
    let accepted = |scores: &[f32]| scores.iter().filter(|s| **s >= threshold).count();
    OperatingPoint {
        far_target,
        threshold,
        tar: share(accepted(genuine), genuine.len()),
        far: share(accepted(impostor_desc), impostor_desc.len()),
    }
}

pub fn metrics(genuine: &[f32], impostor: &[f32], configured_threshold: f32) -> Metrics {
    let mut impostor_desc = impostor.to_vec();
    impostor_desc.sort_by(|a, b| b.total_cmp(a));

    // Sweep thresholds over every score: accuracy when accepting scores ≥ that score.
    let mut labelled: Vec<(f32, bool)> =
        genuine.iter().map(|s| (*s, true)).chain(impostor.iter().map(|s| (*s, false))).collect();
    labelled.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total = labelled.len();
    // Accepting nothing: all impostors right, all genuine wrong.
    let (mut best, mut best_threshold) = (share(impostor.len(), total), f32::INFINITY);
    let (mut true_accepts, mut false_accepts) = (0, 0);
    for (i, (score, same)) in labelled.iter().enumerate() {
        if *same {
            true_accepts += 1
        } else {
            false_accepts += 1
        }
        let next_differs = labelled.get(i + 1).is_none_or(|(next, _)| next < score);
        if next_differs {
            let correct = true_accepts + (impostor.len() - false_accepts);
            let accuracy = share(correct, total);
            if accuracy > best {
                (best, best_threshold) = (accuracy, *score);
            }
        }
    }
    Metrics {
        genuine: genuine.len(),
        impostor: impostor.len(),
        at_far_1_percent: operating_point(genuine, &impostor_desc, 0.01),
        at_far_0_1_percent: operating_point(genuine, &impostor_desc, 0.001),
        best_accuracy: best,
        best_accuracy_threshold: best_threshold,
        at_configured_threshold: ThresholdRates {
            threshold: configured_threshold,
            tar: share(genuine.iter().filter(|s| **s >= configured_threshold).count(), genuine.len()),
            far: share(impostor.iter().filter(|s| **s >= configured_threshold).count(), impostor.len()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_scores_are_perfect() {
        let genuine = [95.0, 96.0, 97.0];
        let impostor: Vec<f32> = (0..1000).map(|i| 40.0 + (i % 40) as f32).collect();
        let m = metrics(&genuine, &impostor, 90.0);
        assert_eq!((m.genuine, m.impostor), (3, 1000));
        assert_eq!((m.at_configured_threshold.tar, m.at_configured_threshold.far), (1.0, 0.0));
        assert_eq!(m.best_accuracy, 1.0);
        assert_eq!(m.best_accuracy_threshold, 95.0);
        assert_eq!(m.at_far_0_1_percent.tar, 1.0);
        assert!(m.at_far_0_1_percent.far <= 0.001);
        assert!(m.at_far_1_percent.threshold <= 95.0);
    }

    #[test]
    fn operating_points_respect_the_far_target() {
        // 1000 impostors from 0 to 99.9, genuine from 90 to 99.
        let impostor: Vec<f32> = (0..1000).map(|i| i as f32 / 10.0).collect();
        let genuine: Vec<f32> = (90..100).map(|i| i as f32).collect();
        let m = metrics(&genuine, &impostor, 99.5);
        assert_eq!(m.at_configured_threshold.far, 0.005);
        // At most 10 impostors may pass at 1%: those ≥ 99.0 (99.0..99.9).
        assert_eq!(m.at_far_1_percent.far, 0.01);
        assert_eq!(m.at_far_1_percent.threshold, 98.9f32.next_up());
        assert_eq!(m.at_far_1_percent.tar, 0.1, "only the genuine 99 passes");
        assert_eq!(m.at_far_0_1_percent.far, 0.001);
    }

    #[test]
    fn the_gallery_protocol_enrols_the_first_pictures_and_probes_with_the_rest() {
        // Ann has pictures 0, 1, 2; Bob 3, 4; Cy only 5 (nothing left to probe with); 1 is unusable.
        let owners = [0, 0, 0, 1, 1, 2];
        let (genuine, impostor) =
            gallery_scores(&owners, 1, |p| p != 1, |gallery, probe| (gallery[0] * 10 + probe) as f32);
        // Probes: Ann's 2 (gallery 0), Bob's 4 (gallery 3), each against Ann's and Bob's galleries.
        assert_eq!(genuine, [2.0, 34.0]);
        assert_eq!(impostor, [32.0, 4.0]);
    }

    #[test]
    fn a_group_table_splits_a_folder_by_person() {
        let dir = tempfile::tempdir().unwrap();
        let faces = dir.path().join("faces");
        for (person, count) in [("ann", 2), ("bob", 3), ("cy", 2), ("dee", 2)] {
            std::fs::create_dir_all(faces.join(person)).unwrap();
            for i in 0..count {
                std::fs::write(faces.join(format!("{person}/{i}.jpg")), b"x").unwrap();
            }
        }
        let table = dir.path().join("README.md");
        std::fs::write(
            &table,
            "# People\n\n| group | person | images |\n|---|---|---|\n| north | ann | 2 |\n| south | Bob | 3 |\n| north | cy | 2 |\n",
        )
        .unwrap();
        let table = read_group_table(&table).unwrap();
        let groups = Group::from_sources(std::slice::from_ref(&faces), Some(&table)).unwrap();
        let summary: Vec<(&str, usize, usize)> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.set.pictures.len(), g.set.pairs.iter().filter(|p| p.2).count()))
            .collect();
        assert_eq!(summary, [("faces/north", 4, 2), ("faces/south", 3, 3), ("faces/ungrouped", 2, 1)]);

        let csv = dir.path().join("groups.csv");
        std::fs::write(&csv, "person,group\nann,north\n").unwrap();
        assert_eq!(read_group_table(&csv).unwrap()["ann"], "north");
        std::fs::write(&csv, "name,kind\n").unwrap();
        assert!(matches!(read_group_table(&csv), Err(EvalError::NoGroupColumns(_))));
    }

    #[test]
    fn pairs_from_a_folder_and_a_csv() {
        let dir = tempfile::tempdir().unwrap();
        for (person, count) in [("ann", 2), ("bob", 3)] {
            std::fs::create_dir_all(dir.path().join(person)).unwrap();
            for i in 0..count {
                std::fs::write(dir.path().join(format!("{person}/{i}.jpg")), b"x").unwrap();
            }
        }
        std::fs::write(dir.path().join("ann/notes.txt"), b"x").unwrap();
        let set = PairSet::from_folder(dir.path()).unwrap();
        assert_eq!(set.pictures.len(), 5);
        assert_eq!(set.pairs.len(), 10);
        assert_eq!(set.pairs.iter().filter(|p| p.2).count(), 1 + 3);

        let csv = dir.path().join("pairs.csv");
        std::fs::write(&csv, "file_x,file_y,Decision\nann/0.jpg,ann/1.jpg,Yes\nann/0.jpg,bob/0.jpg,No\n").unwrap();
        let set = PairSet::from_csv(&csv).unwrap();
        assert_eq!(set.pictures.len(), 3, "pictures are listed once");
        assert_eq!(set.pairs, [(0, 1, true), (0, 2, false)]);

        std::fs::write(&csv, "a.jpg,b.jpg,maybe\na.jpg,b.jpg,perhaps\n").unwrap();
        let err = PairSet::from_csv(&csv).unwrap_err().to_string();
        assert!(err.contains("line 2: the label must be Yes or No"), "{err}");
    }
}
