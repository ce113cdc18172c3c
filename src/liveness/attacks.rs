//! Synthetic presentation attacks, made from real photos: what a card thief could hold up to the
//! camera. Each is a burst of frames of a flat picture moved in front of a simulated camera by a
//! hand (jitter, tilt, perspective): the photo alone, the photo on a phone screen (bezel, screen
//! gamma, moiré) or printed on paper (lower contrast, paper edge). They are synthetic: a real
//! print or screen in front of a real camera also has blur, reflections and sensor noise that
//! these only approximate. Everything is seeded, so a burst can be made again exactly.

use image::{Rgb, RgbImage};

use crate::names::named_enum;

named_enum! {
    /// How the picture is presented.
    pub enum Attack {
        /// The photo alone, as a rigid plane moved by hand.
        Photo = "photo",
        /// The photo on a phone: black bezel, screen gamma and tint, moiré with the camera.
        Screen = "screen",
        /// The photo printed on paper: lower contrast, warmer, a white paper edge.
        Print = "print",
        /// The phone of `screen` with a lamp mirrored in its glass: a bright band across it.
        Glare = "glare",
    }
}

/// Size of the frames made, as from a door camera.
pub const FRAME_WIDTH: u32 = 640;
pub const FRAME_HEIGHT: u32 = 480;
/// The simulated camera's focal length in pixels (a typical 60–70° wide lens at 640 px).
const FOCAL: f64 = 560.0;

/// A deterministic source of randomness (xorshift64*), so a burst can be made again exactly.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x2545_F491_4F6C_DD1D) | 1)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high).
    pub fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    pub fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// A stable seed from a name (FNV-1a), so the same photo always makes the same burst.
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The picture as it is held up: the photo with what surrounds it (bezel, paper), the part that
/// glows (the screen) for the moiré, and a lamp's reflection on its glass.
struct Presented {
    picture: RgbImage,
    /// The screen's rectangle (x, y, width, height) in `picture`, for the moiré.
    screen: Option<(u32, u32, u32, u32)>,
    glare: Option<Band>,
}

/// A straight band of reflected light across the picture (its coordinates), `slant` pixels
/// across per pixel down, through (`centre`, the picture's middle height).
struct Band {
    slant: f64,
    centre: f64,
    half_width: f64,
}

impl Band {
    /// How much of the lamp's light reaches (u, v) of a picture `height` high: full in the band's
    /// middle, fading over its outer third.
    fn strength(&self, u: f64, v: f64, height: f64) -> f64 {
        let across = (u - self.centre - self.slant * (v - height / 2.0)).abs();
        ((self.half_width - across) / (self.half_width / 3.0)).clamp(0.0, 1.0)
    }
}

fn clamp_u8(value: f64) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

fn present(photo: &RgbImage, attack: Attack, dice: &mut Dice) -> Presented {
    let (w, h) = photo.dimensions();
    match attack {
        Attack::Photo => Presented { picture: photo.clone(), screen: None, glare: None },
        Attack::Glare => {
            // A band of light at a slant, 6–14 % of the picture's width, somewhere across the face.
            let shown = present(photo, Attack::Screen, dice);
            let width = f64::from(shown.picture.width());
            let glare = Band {
                slant: dice.between(-0.6, 0.6),
                centre: width * dice.between(0.35, 0.65),
                half_width: width * dice.between(0.03, 0.07),
            };
            Presented { glare: Some(glare), ..shown }
        }
        Attack::Screen => {
            // A phone held upright: the photo fills the screen's width, the bezel is dark grey.
            let border = (w / 14).max(4);
            let (screen_w, screen_h) = (w, h * 16 / 10);
            let mut picture = RgbImage::from_pixel(screen_w + 2 * border, screen_h + 2 * border * 2, Rgb([18, 18, 22]));
            let (sx, sy) = (border, border * 2);
            for y in 0..screen_h {
                for x in 0..screen_w {
                    picture.put_pixel(sx + x, sy + y, Rgb([8, 8, 10]));
                }
            }
            let top = (screen_h - h) / 2;
            for (x, y, pixel) in photo.enumerate_pixels() {
                // A screen's gamma and its cool white: brighter mid-tones, a blue cast.
                let [r, g, b] = pixel.0.map(|c| 255.0 * (f64::from(c) / 255.0).powf(0.8));
                picture.put_pixel(
                    sx + x,
                    sy + top + y,
                    Rgb([clamp_u8(r * 0.94), clamp_u8(g * 0.98), clamp_u8(b * 1.06 + 6.0)]),
                );
            }
            Presented { picture, screen: Some((sx, sy, screen_w, screen_h)), glare: None }
        }
        Attack::Print => {
            // Ink on paper: blacks are grey, whites are the paper's, colours a little washed out.
            let margin = (w / 8).max(6);
            let paper = [246.0, 242.0, 230.0];
            let mut picture = RgbImage::from_pixel(w + 2 * margin, h + 2 * margin, Rgb(paper.map(clamp_u8)));
            for (x, y, pixel) in photo.enumerate_pixels() {
                let [r, g, b] = pixel.0.map(f64::from);
                let grey = 0.299 * r + 0.587 * g + 0.114 * b;
                let ink = [r, g, b].map(|c| 0.75 * c + 0.25 * grey);
                let printed: [u8; 3] = std::array::from_fn(|i| clamp_u8(35.0 + ink[i] / 255.0 * (paper[i] - 50.0)));
                picture.put_pixel(margin + x, margin + y, Rgb(printed));
            }
            Presented { picture, screen: None, glare: None }
        }
    }
}

/// A 3×3 matrix, row-major.
type Matrix = [[f64; 3]; 3];

fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    std::array::from_fn(|i| std::array::from_fn(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
}

fn invert(m: &Matrix) -> Option<Matrix> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 {
        return None;
    }
    let cofactor = |r0: usize, r1: usize, c0: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    Some([
        [cofactor(1, 2, 1, 2) / det, -cofactor(0, 2, 1, 2) / det, cofactor(0, 1, 1, 2) / det],
        [-cofactor(1, 2, 0, 2) / det, cofactor(0, 2, 0, 2) / det, -cofactor(0, 1, 0, 2) / det],
        [cofactor(1, 2, 0, 1) / det, -cofactor(0, 2, 0, 1) / det, cofactor(0, 1, 0, 1) / det],
    ])
}

/// Where the picture is in front of the camera: turned by yaw, pitch and roll (degrees) about
/// its centre, its centre at (x, y) pixels off the optical axis (at the picture's distance) and
/// `distance` picture-pixels away.
#[derive(Debug, Clone, Copy)]
struct Pose {
    yaw: f64,
    pitch: f64,
    roll: f64,
    x: f64,
    y: f64,
    distance: f64,
}

/// The homography from the picture's pixels to the frame's.
fn picture_to_frame(pose: &Pose, width: u32, height: u32) -> Matrix {
    let (sy, cy) = pose.yaw.to_radians().sin_cos();
    let (sp, cp) = pose.pitch.to_radians().sin_cos();
    let (sr, cr) = pose.roll.to_radians().sin_cos();
    let yaw = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
    let pitch = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]];
    let roll = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]];
    let r = multiply(&roll, &multiply(&yaw, &pitch));
    // Picture point (u, v) → camera point R·(u − w/2, v − h/2, 0) + t → projected with K.
    let t = [pose.x * pose.distance / FOCAL, pose.y * pose.distance / FOCAL, pose.distance];
    let (cx, cy0) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
    let columns = [[r[0][0], r[1][0], r[2][0]], [r[0][1], r[1][1], r[2][1]]];
    let offset: [f64; 3] = std::array::from_fn(|i| t[i] - columns[0][i] * cx - columns[1][i] * cy0);
    let extrinsic = [
        [columns[0][0], columns[1][0], offset[0]],
        [columns[0][1], columns[1][1], offset[1]],
        [columns[0][2], columns[1][2], offset[2]],
    ];
    let k = [[FOCAL, 0.0, f64::from(FRAME_WIDTH) / 2.0], [0.0, FOCAL, f64::from(FRAME_HEIGHT) / 2.0], [0.0, 0.0, 1.0]];
    multiply(&k, &extrinsic)
}

fn sample(picture: &RgbImage, x: f64, y: f64) -> Option<[f64; 3]> {
    let (w, h) = picture.dimensions();
    if x < 0.0 || y < 0.0 || x > f64::from(w - 1) || y > f64::from(h - 1) {
        return None;
    }
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - f64::from(x0), y - f64::from(y0));
    let at = |px, py| picture.get_pixel(px, py).0.map(f64::from);
    let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
    Some(std::array::from_fn(|i| (a[i] * (1.0 - fx) + b[i] * fx) * (1.0 - fy) + (c[i] * (1.0 - fx) + d[i] * fx) * fy))
}

/// A plain wall behind the picture: a colour, a gentle gradient, the camera's noise added later.
fn wall(dice: &mut Dice) -> impl Fn(u32, u32) -> [f64; 3] + use<> {
    let base = [dice.between(90.0, 200.0), dice.between(90.0, 200.0), dice.between(90.0, 200.0)];
    let (gx, gy) = (dice.between(-0.08, 0.08), dice.between(-0.08, 0.08));
    move |x, y| base.map(|c| c + gx * f64::from(x) + gy * f64::from(y))
}

/// A burst of `frames` frames of `photo` presented as `attack` and moved by a hand: a steady
/// drift in tilt (as an attacker turning the picture to fake a head turn, up to ±20°), with
/// jitter on top, and the picture 200–320 px wide in a 640×480 frame.
pub fn burst(photo: &RgbImage, attack: Attack, frames: usize, seed: u64) -> Vec<RgbImage> {
    let mut dice = Dice::new(seed ^ seed_of(attack.as_str()));
    let presented = present(photo, attack, &mut dice);
    let (w, h) = presented.picture.dimensions();
    let shown_width = dice.between(200.0, 320.0) * f64::from(w) / f64::from(photo.width());
    let distance = FOCAL * f64::from(w) / shown_width;
    let start = Pose {
        yaw: dice.between(-15.0, 15.0),
        pitch: dice.between(-10.0, 10.0),
        roll: dice.between(-8.0, 8.0),
        x: dice.between(-60.0, 60.0),
        y: dice.between(-40.0, 40.0),
        distance,
    };
    let drift = (dice.between(-20.0, 20.0), dice.between(-10.0, 10.0));
    let background = wall(&mut dice);
    // The moiré: the screen's pixel grid beating with the sensor's, a fine slanted pattern.
    let moire = (dice.between(0.18, 0.3), dice.between(0.05, 0.15), dice.between(0.06, 0.12));
    (0..frames)
        .map(|i| {
            let progress = if frames > 1 { i as f64 / (frames - 1) as f64 } else { 0.0 };
            let pose = Pose {
                yaw: start.yaw + drift.0 * progress + 1.5 * dice.gaussian(),
                pitch: start.pitch + drift.1 * progress + 1.5 * dice.gaussian(),
                roll: start.roll + 1.0 * dice.gaussian(),
                x: start.x + 6.0 * dice.gaussian(),
                y: start.y + 6.0 * dice.gaussian(),
                distance: start.distance * (1.0 + 0.02 * dice.gaussian()),
            };
            let to_picture = invert(&picture_to_frame(&pose, w, h)).expect("a picture in front of the camera");
            let phase = dice.between(0.0, std::f64::consts::TAU);
            let mut frame = RgbImage::new(FRAME_WIDTH, FRAME_HEIGHT);
            for (x, y, pixel) in frame.enumerate_pixels_mut() {
                let (fx, fy) = (f64::from(x), f64::from(y));
                let p = [0, 1, 2].map(|r| to_picture[r][0] * fx + to_picture[r][1] * fy + to_picture[r][2]);
                let (u, v) = (p[0] / p[2], p[1] / p[2]);
                let seen = if p[2] > 0.0 { sample(&presented.picture, u, v) } else { None };
                let colour = match seen {
                    Some(mut colour) => {
                        let on_screen = presented.screen.is_some_and(|(sx, sy, sw, sh)| {
                            u >= f64::from(sx) && v >= f64::from(sy) && u < f64::from(sx + sw) && v < f64::from(sy + sh)
                        });
                        if on_screen {
                            let wave = (std::f64::consts::TAU * (moire.0 * fx + moire.1 * fy) + phase).sin();
                            colour = colour.map(|c| c * (1.0 + moire.2 * wave));
                        }
                        // The reflection is on the glass, over the screen's pixels and their moiré.
                        if let Some(band) = &presented.glare {
                            let light = 255.0 * band.strength(u, v, f64::from(h));
                            colour = colour.map(|c| c + light);
                        }
                        colour
                    }
                    None => background(x, y),
                };
                *pixel = Rgb(colour.map(|c| clamp_u8(c + 2.0 * dice.gaussian())));
            }
            frame
        })
        .collect()
}

/// A stand-in for a person standing still (not a live capture): the same real photo in every
/// frame, with the camera's noise and a pixel or two of shake, unchanged otherwise.
pub fn still(photo: &RgbImage, frames: usize, seed: u64) -> Vec<RgbImage> {
    let mut dice = Dice::new(seed);
    let (w, h) = photo.dimensions();
    (0..frames)
        .map(|_| {
            let (dx, dy) = (dice.between(-1.5, 1.5), dice.between(-1.5, 1.5));
            RgbImage::from_fn(w, h, |x, y| {
                let colour = sample(photo, f64::from(x) + dx, f64::from(y) + dy)
                    .unwrap_or_else(|| photo.get_pixel(x, y).0.map(f64::from));
                Rgb(colour.map(|c| clamp_u8(c + 2.0 * dice.gaussian())))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkerboard() -> RgbImage {
        RgbImage::from_fn(
            100,
            120,
            |x, y| if (x / 10 + y / 10) % 2 == 0 { Rgb([250, 250, 250]) } else { Rgb([5, 5, 5]) },
        )
    }

    #[test]
    fn bursts_are_the_same_for_the_same_seed_and_differ_frame_to_frame() {
        let photo = checkerboard();
        for attack in Attack::ALL {
            let once = burst(&photo, *attack, 3, 7);
            assert_eq!(once, burst(&photo, *attack, 3, 7), "{attack}");
            assert_eq!(once.len(), 3);
            assert_eq!(once[0].dimensions(), (FRAME_WIDTH, FRAME_HEIGHT));
            assert_ne!(once[0], once[1], "{attack}: the hand moves");
        }
        assert_ne!(burst(&photo, Attack::Photo, 1, 7), burst(&photo, Attack::Photo, 1, 8));
    }

    #[test]
    fn a_print_has_less_contrast_and_a_paper_edge() {
        let photo = checkerboard();
        let printed = present(&photo, Attack::Print, &mut Dice::new(1)).picture;
        let greys: Vec<u8> = printed.pixels().map(|p| p.0[1]).collect();
        let (darkest, lightest) = (greys.iter().min().unwrap(), greys.iter().max().unwrap());
        assert!(*darkest >= 30 && *lightest <= 242, "ink is never black, paper never white: {darkest}..{lightest}");
        assert_eq!(printed.get_pixel(1, 1).0, [246, 242, 230], "the paper's edge");
        let screen = present(&photo, Attack::Screen, &mut Dice::new(1));
        assert_eq!(screen.picture.get_pixel(1, 1).0, [18, 18, 22], "the bezel");
    }

    #[test]
    fn the_picture_lands_where_the_pose_puts_it() {
        let pose = Pose { yaw: 0.0, pitch: 0.0, roll: 0.0, x: 0.0, y: 0.0, distance: FOCAL };
        let h = picture_to_frame(&pose, 100, 120);
        let centre = [50.0, 60.0, 1.0];
        let p: [f64; 3] = std::array::from_fn(|r| (0..3).map(|k| h[r][k] * centre[k]).sum());
        assert!((p[0] / p[2] - 320.0).abs() < 1e-9 && (p[1] / p[2] - 240.0).abs() < 1e-9, "{p:?}");
        let inverse = invert(&h).unwrap();
        let back = multiply(&inverse, &h);
        assert!((back[0][0] / back[2][2] - 1.0).abs() < 1e-9);
    }
}
