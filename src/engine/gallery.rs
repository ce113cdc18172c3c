//! The enrolled faces a search looks through, built once when they are loaded (the door's gallery
//! cache builds a new one whenever enrolment changes the faces) and shared by every search.
//!
//! Besides the stored faces, a gallery packs their descriptors into one matrix of 8-bit values,
//! a scale per row. A 1:N search streams through that matrix with integer dot products the
//! compiler vectorises, with AVX2 where the CPU has it (a quarter of the memory traffic of `f32`: 100k faces of 192 values are
//! 19 MB, which stays in a large cache), bounds each row's quantisation error, and then computes
//! the exact cosine only for the rows that could still be the closest. The answer is the one an
//! exact search over every face gives; no search allocates per face.

use std::ops::Deref;
use std::sync::Arc;

use super::{FaceTemplate, StoredFace};

/// The enrolled faces of the current engine, shared cheaply with searches in flight.
#[derive(Clone, Default)]
pub struct Gallery(Arc<Indexed>);

#[derive(Default)]
struct Indexed {
    faces: Vec<StoredFace>,
    matrix: Matrix,
}

/// Most a quantised value may be: `i8` without -128, so that negating never overflows.
const Q_MAX: f32 = 127.0;
/// Added to every row's error bound for the rounding of `f32` arithmetic (the exact cosine of
/// two unit descriptors is itself a sum of a few hundred rounded products).
const SLACK: f32 = 1e-4;

/// The cosine of two unit descriptors of the same length: their dot product, summed in order.
/// Every similarity the engines report is computed by this one function.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// A descriptor as 8-bit values: `value ≈ scale · q`, each off by at most `scale / 2`.
struct Quantised {
    scale: f32,
    /// Σ|scale · q|: with the other side's scale, bounds what the rounding changes a dot product.
    l1: f32,
}

impl Quantised {
    /// Appends the quantised values of `values` to `out`; `None` (nothing appended) for values
    /// that are not all finite.
    fn push(values: &[f32], out: &mut Vec<i8>) -> Option<Self> {
        if !values.iter().all(|v| v.is_finite()) {
            return None;
        }
        let largest = values.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = largest / Q_MAX;
        let start = out.len();
        out.extend(values.iter().map(|v| if scale > 0.0 { (v / scale).round() as i8 } else { 0 }));
        let l1 = out[start..].iter().map(|&q| f32::from(q).abs()).sum::<f32>() * scale;
        Some(Self { scale, l1 })
    }

    /// How far the dot product of the quantised forms of `self`'s and `other`'s descriptors
    /// (`len` values each) may be from the exact one.
    fn error_bound(&self, other: &Self, len: f32) -> f32 {
        // x·r − x̂·r̂ = x̂·e_r + e_x·r̂ + e_x·e_r, each |e| ≤ scale / 2.
        0.5 * (other.scale * self.l1 + self.scale * other.l1) + 0.25 * len * self.scale * other.scale + SLACK
    }
}

/// The descriptors of one length, quantised, one row per face that has one.
#[derive(Default)]
struct Matrix {
    len: usize,
    /// Row after row, `len` values each.
    values: Vec<i8>,
    rows: Vec<Row>,
}

struct Row {
    /// Index of the face in [`Indexed::faces`].
    face: usize,
    quantised: Quantised,
}

fn descriptor(face: &StoredFace) -> Option<&[f32]> {
    match &face.template {
        FaceTemplate::Descriptor(values) => Some(values),
        FaceTemplate::Remote(_) => None,
    }
}

/// Values multiplied and summed at once: as many as the widest registers (AVX2's 256 bits) hold
/// as 16-bit products.
const LANES: usize = 16;

/// The dot product of two rows of 8-bit values, exact: each product fits in `i16` (127² < 2¹⁵)
/// and is summed in its own `i32` lane, the shape of the SIMD multiply instructions every target
/// has (SSE2's `pmullw`, NEON's `smull`), so the compiler vectorises it; products in `i32`
/// straight away need SSE4.1's `pmulld`, which the x86-64 baseline lacks (2.4× slower, measured).
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut lanes = [0i32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 =
        a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            lanes[lane] += i32::from(i16::from(x[lane]) * i16::from(y[lane]));
        }
    }
    lanes.iter().sum::<i32>() + tail
}

/// Calls `visit` with each row's index and its dot product with `query`, in order.
#[inline(always)]
fn scan<F: FnMut(usize, i32)>(query: &[i8], values: &[i8], mut visit: F) {
    for (index, row) in values.chunks_exact(query.len()).enumerate() {
        visit(index, dot_i8(query, row));
    }
}

/// [`scan`] compiled for AVX2: twice the values per instruction of the x86-64 baseline.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2<F: FnMut(usize, i32)>(query: &[i8], values: &[i8], visit: F) {
    scan(query, values, visit);
}

/// [`scan`] with the widest instructions this CPU has.
fn scan_fastest<F: FnMut(usize, i32)>(query: &[i8], values: &[i8], visit: F) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { scan_avx2(query, values, visit) };
    }
    scan(query, values, visit);
}

impl Matrix {
    /// The descriptors of `faces` that have the length of the first one and are finite. Others
    /// (another model's, or corrupt) are left out: they never match.
    fn of(faces: &[StoredFace]) -> Self {
        let Some(len) = faces.iter().find_map(descriptor).map(<[f32]>::len) else { return Self::default() };
        let mut values = Vec::with_capacity(faces.len() * len);
        let mut rows = Vec::with_capacity(faces.len());
        for (face, stored) in faces.iter().enumerate() {
            if let Some(descriptor) = descriptor(stored).filter(|d| d.len() == len)
                && let Some(quantised) = Quantised::push(descriptor, &mut values)
            {
                rows.push(Row { face, quantised });
            }
        }
        values.shrink_to_fit();
        rows.shrink_to_fit();
        Self { len, values, rows }
    }
}

impl Gallery {
    /// Whether both are the very same gallery (not merely equal faces): cheap, for caching what
    /// is derived from one.
    pub fn is_same(&self, other: &Gallery) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The face whose descriptor is closest to `descriptor` (the largest cosine), with that
    /// cosine as [`cosine`] computes it; `None` when no face has a descriptor of its length.
    pub fn nearest(&self, descriptor: &[f32]) -> Option<(&StoredFace, f32)> {
        let Indexed { faces, matrix } = self.0.as_ref();
        if matrix.rows.is_empty() || descriptor.len() != matrix.len {
            return None;
        }
        let mut query_values = Vec::with_capacity(matrix.len);
        let query = Quantised::push(descriptor, &mut query_values)?;
        let len = matrix.len as f32;
        // Rows whose upper bound reaches the best lower bound seen so far, with that upper bound.
        let mut candidates: Vec<(usize, f32)> = Vec::new();
        let mut best_lower = f32::NEG_INFINITY;
        scan_fastest(&query_values, &matrix.values, |index, dot| {
            let row = &matrix.rows[index].quantised;
            let approximate = dot as f32 * query.scale * row.scale;
            let error = query.error_bound(row, len);
            if approximate + error >= best_lower {
                candidates.push((index, approximate + error));
                best_lower = best_lower.max(approximate - error);
            }
        });
        let mut best: Option<(&StoredFace, f32)> = None;
        for (index, _) in candidates.into_iter().filter(|&(_, upper)| upper >= best_lower) {
            let face = &faces[matrix.rows[index].face];
            let exact = cosine(descriptor, descriptor_of(face));
            if best.is_none_or(|(_, cosine)| exact >= cosine) {
                best = Some((face, exact));
            }
        }
        best
    }
}

/// The descriptor of a face that has a row in the matrix.
fn descriptor_of(face: &StoredFace) -> &[f32] {
    descriptor(face).unwrap_or_default()
}

impl Deref for Gallery {
    type Target = [StoredFace];

    fn deref(&self) -> &[StoredFace] {
        &self.0.faces
    }
}

impl From<Vec<StoredFace>> for Gallery {
    fn from(faces: Vec<StoredFace>) -> Self {
        let matrix = Matrix::of(&faces);
        Self(Arc::new(Indexed { faces, matrix }))
    }
}

impl FromIterator<StoredFace> for Gallery {
    fn from_iter<I: IntoIterator<Item = StoredFace>>(faces: I) -> Self {
        faces.into_iter().collect::<Vec<_>>().into()
    }
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery").field("faces", &self.len()).field("indexed", &self.0.matrix.rows.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::PersonId;

    /// SplitMix64: deterministic test vectors without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        }

        fn unit(&mut self, len: usize) -> Vec<f32> {
            let raw: Vec<f32> = (0..len).map(|_| self.next()).collect();
            let norm = cosine(&raw, &raw).sqrt();
            raw.into_iter().map(|v| v / norm).collect()
        }

        /// `base` moved a little: another picture of the same face.
        fn near(&mut self, base: &[f32], by: f32) -> Vec<f32> {
            let moved: Vec<f32> = base.iter().map(|v| v + by * self.next()).collect();
            let norm = cosine(&moved, &moved).sqrt();
            moved.into_iter().map(|v| v / norm).collect()
        }
    }

    fn face(id: i64, template: FaceTemplate) -> StoredFace {
        StoredFace { id, person: PersonId(id / 3), template }
    }

    /// What searching every face exactly gives: the largest cosine, the later face on a tie.
    fn exact_nearest(gallery: &Gallery, query: &[f32]) -> Option<(i64, f32)> {
        gallery
            .iter()
            .filter_map(|f| descriptor(f).filter(|d| d.len() == query.len()).map(|d| (f.id, cosine(query, d))))
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    #[test]
    fn the_quantised_search_finds_what_an_exact_search_finds() {
        let mut rng = Rng(7);
        for (len, faces) in [(128, 500), (192, 2_000), (192, 50)] {
            let mut descriptors: Vec<Vec<f32>> = (0..faces).map(|_| rng.unit(len)).collect();
            // Close look-alikes, where rounding could change the order.
            for i in 0..faces / 10 {
                let near = rng.near(&descriptors[i], 0.01);
                descriptors.push(near);
            }
            let gallery: Gallery = descriptors
                .iter()
                .enumerate()
                .map(|(i, d)| face(i as i64, FaceTemplate::Descriptor(d.clone())))
                .collect();
            for probe in 0..200 {
                let query = match probe % 2 {
                    0 => rng.unit(len),
                    _ => rng.near(&descriptors[probe % descriptors.len()], 0.02),
                };
                let found = gallery.nearest(&query).map(|(f, c)| (f.id, c));
                assert_eq!(found, exact_nearest(&gallery, &query), "len {len}, probe {probe}");
            }
        }
    }

    #[test]
    fn every_scan_gives_the_exact_integer_dot_products() {
        let mut rng = Rng(5);
        for len in [4, 16, 128, 192, 200] {
            let mut values = Vec::new();
            for _ in 0..50 {
                Quantised::push(&rng.unit(len), &mut values);
            }
            // The extremes too: every product at ±127².
            values.extend(std::iter::repeat_n(-127i8, len));
            let mut query = Vec::new();
            Quantised::push(&rng.unit(len), &mut query);
            let exact: Vec<i32> = values
                .chunks_exact(len)
                .map(|row| row.iter().zip(&query).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum())
                .collect();
            let (mut portable, mut fastest) = (Vec::new(), Vec::new());
            scan(&query, &values, |_, dot| portable.push(dot));
            scan_fastest(&query, &values, |_, dot| fastest.push(dot));
            assert_eq!(portable, exact, "len {len}");
            assert_eq!(fastest, exact, "len {len}");
        }
    }

    #[test]
    fn faces_without_a_usable_descriptor_never_match() {
        let mut rng = Rng(11);
        let query = rng.unit(4);
        let gallery: Gallery = vec![
            face(0, FaceTemplate::Remote("cloud".into())),
            face(1, FaceTemplate::Descriptor(rng.unit(4))),
            face(2, FaceTemplate::Descriptor(query.iter().map(|_| f32::NAN).collect())),
            face(3, FaceTemplate::Descriptor(query[..3].to_vec())),
            face(4, FaceTemplate::Descriptor(query.iter().map(|v| -v).collect())),
        ]
        .into();
        assert_eq!(gallery.len(), 5, "every face stays in the gallery");
        let (found, similarity) = gallery.nearest(&query).unwrap();
        assert_eq!(found.id, 1);
        assert_eq!(similarity, cosine(&query, descriptor(&gallery[1]).unwrap()));
        assert!(gallery.nearest(&query[..3]).is_none(), "another model's descriptor finds nothing");
        assert!(Gallery::default().nearest(&query).is_none());
        assert!(Gallery::from(vec![face(0, FaceTemplate::Remote("x".into()))]).nearest(&query).is_none());
    }

    #[test]
    fn the_same_face_enrolled_twice_is_found() {
        let mut rng = Rng(3);
        let query = rng.unit(192);
        let gallery: Gallery = [rng.unit(192), query.clone(), query.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, d)| face(i as i64, FaceTemplate::Descriptor(d)))
            .collect();
        let (found, cosine) = gallery.nearest(&query).unwrap();
        assert_eq!(found.id, 2, "on a tie the later face, as a scan keeping the last maximum");
        assert!((cosine - 1.0).abs() < 1e-5);
    }
}
