//! FERPlus label rules on a tiny fixture: every rule case (tie, not a face, unknown, no votes,
//! contempt under emotion7), the join (unique, agreeing and disagreeing duplicates, no row,
//! a file the table does not list) and the readers' errors.

use fer_core::ferplus::{
    JOIN_HEADER, Reject, VOTES_HEADER, Votes, binary_label, emotion_label, join_label, read_join,
    read_votes,
};
use fer_core::label::{BinaryLabel, Emotion};

/// neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF.
fn v(c: [u8; 10]) -> Votes {
    let mut emotions = [0u8; 8];
    emotions.copy_from_slice(&c[..8]);
    Votes {
        emotions,
        unknown: c[8],
        not_face: c[9],
    }
}

#[test]
fn the_plurality_of_the_emotion_votes_is_the_label() {
    let happy = v([1, 7, 1, 0, 0, 0, 0, 0, 1, 0]);
    assert_eq!(binary_label(&happy), Ok(BinaryLabel::Happy));
    assert_eq!(emotion_label(&happy), Ok(Emotion::Happy));
    let sad = v([2, 1, 0, 6, 0, 0, 0, 0, 1, 0]);
    assert_eq!(binary_label(&sad), Ok(BinaryLabel::NotHappy));
    assert_eq!(emotion_label(&sad), Ok(Emotion::Sad));
    // 7 of the 9 emotion votes (the unknown vote is not an emotion).
    assert_eq!(happy.happy_share(), Some(7.0 / 9.0));
    assert_eq!(v([0; 10]).happy_share(), None);
}

#[test]
fn seven_class_shares_leave_contempt_out_and_follow_emotion_codes() {
    // neutral 2, happiness 1, sadness 3, contempt 4 (left out), unknown 1: 6 votes for the seven.
    let votes = v([2, 1, 0, 3, 0, 0, 0, 4, 1, 0]);
    let s = votes.shares7().expect("votes for the seven");
    let mut want = [0.0; 7];
    want[Emotion::Neutral.code() as usize] = 2.0 / 6.0;
    want[Emotion::Happy.code() as usize] = 1.0 / 6.0;
    want[Emotion::Sad.code() as usize] = 3.0 / 6.0;
    assert_eq!(s, want);
    assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // Contempt's votes alone: no seven-class target.
    assert_eq!(v([0, 0, 0, 0, 0, 0, 0, 5, 0, 5]).shares7(), None);
}

#[test]
fn ties_reject_only_where_they_change_the_answer() {
    // happiness tied with surprise at the top: neither binary nor seven-class can say.
    let t = v([0, 4, 4, 0, 0, 0, 0, 0, 2, 0]);
    assert_eq!(binary_label(&t), Err(Reject::Tie));
    assert_eq!(emotion_label(&t), Err(Reject::Tie));
    // sadness tied with anger: not happy either way, but no single emotion.
    let t = v([0, 1, 0, 4, 4, 0, 0, 0, 1, 0]);
    assert_eq!(binary_label(&t), Ok(BinaryLabel::NotHappy));
    assert_eq!(emotion_label(&t), Err(Reject::Tie));
}

#[test]
fn not_a_face_unknown_and_no_votes_are_rejected() {
    assert_eq!(
        binary_label(&v([0, 0, 0, 0, 0, 0, 0, 0, 0, 10])),
        Err(Reject::NoVotes)
    );
    let nf = v([3, 0, 0, 0, 0, 0, 0, 0, 2, 5]);
    assert_eq!(binary_label(&nf), Err(Reject::NotAFace));
    assert_eq!(emotion_label(&nf), Err(Reject::NotAFace));
    // NF tied with the top emotion is still not a face.
    let nf = v([4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
    assert_eq!(binary_label(&nf), Err(Reject::NotAFace));
    let unk = v([2, 2, 0, 0, 0, 0, 0, 0, 6, 0]);
    assert_eq!(binary_label(&unk), Err(Reject::Unknown));
    assert_eq!(emotion_label(&unk), Err(Reject::Unknown));
}

#[test]
fn contempt_is_not_happy_and_not_a_fer2013_class() {
    let c = v([2, 0, 0, 0, 0, 1, 0, 7, 0, 0]);
    assert_eq!(binary_label(&c), Ok(BinaryLabel::NotHappy));
    assert_eq!(emotion_label(&c), Err(Reject::Contempt));
    // contempt tied with disgust at the top: the seven-class label is disgust.
    let c = v([1, 0, 0, 0, 0, 4, 0, 4, 1, 0]);
    assert_eq!(emotion_label(&c), Ok(Emotion::Disgust));
}

fn fixture() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let votes = d.path().join("fer2013new.csv");
    std::fs::write(
        &votes,
        format!(
            "{VOTES_HEADER}\n\
             Training,fer0000000.png,0,9,0,0,0,0,0,0,1,0\n\
             Training,fer0000001.png,0,8,1,0,0,0,0,0,1,0\n\
             Training,fer0000002.png,6,0,0,4,0,0,0,0,0,0\n\
             Training,,0,0,0,0,0,0,0,0,0,10\n"
        ),
    )
    .unwrap();
    let join = d.path().join("join.csv");
    std::fs::write(
        &join,
        format!(
            "{JOIN_HEADER}\n\
             train/happy/a.jpg,Training,0,1,0,1.5\n\
             train/happy/dup_agree.jpg,Training,,2,0;1,1.6\n\
             train/sad/dup_disagree.jpg,Training,,2,1;2,1.7\n\
             train/angry/excluded.jpg,Training,,0,,\n"
        ),
    )
    .unwrap();
    (d, votes, join)
}

#[test]
fn the_join_takes_unique_rows_and_agreeing_duplicates() {
    let (_d, votes, join) = fixture();
    let votes = read_votes(&votes).unwrap();
    assert_eq!(votes.len(), 4);
    assert_eq!(votes[3].image_name, "");
    let join = read_join(&join).unwrap();
    let label = |p: &str| join_label(join.get(p), &votes, binary_label);
    assert_eq!(label("train/happy/a.jpg"), Ok((BinaryLabel::Happy, 0)));
    assert_eq!(
        label("train/happy/dup_agree.jpg"),
        Ok((BinaryLabel::Happy, 0))
    );
    assert_eq!(
        label("train/sad/dup_disagree.jpg"),
        Err(Reject::AmbiguousJoin)
    );
    assert_eq!(label("train/angry/excluded.jpg"), Err(Reject::NoJoinRow));
    assert_eq!(label("train/angry/not_listed.jpg"), Err(Reject::NoJoinRow));
}

#[test]
fn malformed_files_name_the_file_and_line() {
    let (d, votes, _) = fixture();
    let text = std::fs::read_to_string(&votes)
        .unwrap()
        .replace("6,0,0,4", "6,x,0,4");
    std::fs::write(&votes, text).unwrap();
    let e = read_votes(&votes).unwrap_err().to_string();
    assert!(
        e.contains("fer2013new.csv: line 4: `x` is not a vote count"),
        "{e}"
    );
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n").unwrap();
    let e = read_join(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.csv: line 1: expected the header"), "{e}");
    let e = read_votes(&d.path().join("missing.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.csv"), "{e}");
}

/// The real files, when they are here (`FERPLUS_DIR` or the shared copy): the counts that
/// SOURCE.md gives, and the agreement it reports.
#[test]
fn the_shared_ferplus_files_read_when_present() {
    let dir = std::env::var("FERPLUS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ferplus")
        });
    let (vp, jp) = (
        dir.join("fer2013new.csv"),
        dir.join("kaggle_fer2013_to_ferplus_rows.csv"),
    );
    if !vp.is_file() || !jp.is_file() {
        eprintln!("skipped: no FERPlus files under {}", dir.display());
        return;
    }
    let votes = read_votes(&vp).unwrap();
    assert_eq!(votes.len(), 35_887);
    assert_eq!(
        votes.iter().filter(|r| r.image_name.is_empty()).count(),
        173
    );
    let join = read_join(&jp).unwrap();
    assert_eq!(join.len(), 35_887);
    let unique = join.values().filter(|j| j.row.is_some()).count();
    assert_eq!(unique, 26_214 + 3_525 + 3_538);
    // The Kaggle folder's happy / not happy against the FERPlus label, where there is one:
    // SOURCE.md measured 94.8% agreement with the majority vote.
    let (mut agree, mut labelled) = (0usize, 0usize);
    for (path, j) in &join {
        if let Ok((l, _)) = join_label(Some(j), &votes, binary_label) {
            labelled += 1;
            let folder_happy = path.split('/').nth(1) == Some("happy");
            agree += usize::from(folder_happy == (l == BinaryLabel::Happy));
        }
    }
    let share = agree as f64 / labelled as f64;
    eprintln!("FERPlus binary labels: {labelled} of 35,887 files; folder agreement {share:.4}");
    assert!(labelled > 33_000, "{labelled}");
    assert!((0.93..0.97).contains(&share), "{share}");
}
