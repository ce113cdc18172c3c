//! Comparing two pictures one to one (an ID photo with a selfie, `facereko compare`): the
//! warnings about what may make the similarity less telling. The limits are enrolment's
//! ([`super::quality`]), chosen on the shared face sets.

use super::ExaminedFace;
use super::quality::{MAX_YAW_DEGREES, MIN_EYE_DISTANCE, MIN_SHARPNESS};

/// What may make a comparison with the face examined on `picture` ("the ID", "the selfie") less
/// telling, each starting with a short phrase a program can look for.
pub fn warnings(face: &ExaminedFace, picture: &str) -> Vec<String> {
    let quality = &face.quality;
    let mut warnings = Vec::new();
    if quality.eye_distance < MIN_EYE_DISTANCE || face.looked_closer {
        let how = if face.looked_closer { "found only in an enlarged part of the picture, " } else { "" };
        warnings.push(format!(
            "small face on {picture}: {how}{:.0} px between the eyes ({MIN_EYE_DISTANCE:.0} or more compares best); \
             use a larger or closer picture",
            quality.eye_distance
        ));
    }
    if face.faces > 1 {
        warnings.push(format!("several faces on {picture}: {}; the largest was compared", face.faces));
    }
    if quality.sharpness < MIN_SHARPNESS {
        warnings
            .push(format!("blurry face on {picture}: sharpness {:.0}, below {MIN_SHARPNESS:.0}", quality.sharpness));
    }
    if quality.yaw_degrees > MAX_YAW_DEGREES {
        warnings.push(format!(
            "turned face on {picture}: about {:.0}° to the side, more than {MAX_YAW_DEGREES:.0}°",
            quality.yaw_degrees
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::DetectedFace;
    use crate::engine::local::quality::Quality;

    fn examined(eye_distance: f32, sharpness: f32, yaw_degrees: f32, faces: usize) -> ExaminedFace {
        ExaminedFace {
            face: DetectedFace { x: 0, y: 0, width: 100, height: 120, confidence: 99.0, landmarks: None },
            descriptor: Vec::new(),
            quality: Quality { eye_distance, sharpness, yaw_degrees },
            faces,
            looked_closer: false,
        }
    }

    #[test]
    fn a_good_face_has_no_warning_and_each_problem_says_where() {
        assert!(warnings(&examined(60.0, 200.0, 5.0, 1), "the selfie").is_empty());
        let all = warnings(&examined(12.0, 10.0, 50.0, 3), "the ID");
        let starts: Vec<&str> = all.iter().map(|w| w.split(':').next().unwrap()).collect();
        assert_eq!(
            starts,
            ["small face on the ID", "several faces on the ID", "blurry face on the ID", "turned face on the ID"]
        );
        assert!(all[0].contains("12 px between the eyes"), "{all:?}");
        let mut closer = examined(40.0, 200.0, 5.0, 1);
        closer.looked_closer = true;
        assert_eq!(warnings(&closer, "the ID").len(), 1, "found only when enlarged: small");
    }
}
