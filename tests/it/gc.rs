//! `nodeforge gc` and the store's extraction records (`out/store/extract/<key>`): what gc reads
//! there is what build writes, so a gc keeps them and a build after it extracts nothing again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use nodeforge::extract::ExtractRecord;

use crate::TestContext;

/// Every extraction record: file name → bytes.
fn records(ctx: &TestContext) -> BTreeMap<String, Vec<u8>> {
    let dir: PathBuf = ctx.store().join("extract");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn gc_keeps_the_extraction_records_build_writes() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    let before = records(&ctx);
    assert!(!before.is_empty(), "build records what it extracts");
    let objects = ctx.store_objects();

    let v = ctx.run(&["gc", "--json"]).ok().json();
    assert_eq!(v["removed_other"], 0, "{v}");
    assert_eq!(v["removed_objects"], 0, "{v}");
    assert_eq!(records(&ctx), before, "gc keeps every extraction record");
    assert_eq!(ctx.store_objects(), objects);
    // What gc reads there.
    for (name, bytes) in &before {
        let rec: ExtractRecord = serde_json::from_slice(bytes)
            .unwrap_or_else(|e| panic!("extract/{name} is not an ExtractRecord: {e}"));
        assert!(!rec.files.is_empty(), "extract/{name} lists no files");
    }

    // Nothing to extract again: the records are neither removed nor rewritten.
    ctx.run(&["build", "--offline"]).ok();
    assert_eq!(records(&ctx), before);
}

#[test]
fn a_record_in_the_old_bare_list_shape_is_extracted_again() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build"]).ok();
    let before = records(&ctx);
    let dir = ctx.store().join("extract");
    // What earlier versions wrote: the list of files alone.
    for (name, bytes) in &before {
        let rec: ExtractRecord = serde_json::from_slice(bytes).unwrap();
        std::fs::write(
            dir.join(name),
            serde_json::to_vec_pretty(&rec.files).unwrap(),
        )
        .unwrap();
    }
    // A config change: every node is rendered and built again, reading the records.
    crate::set_verbosity(&ctx, 4);
    ctx.run(&["build", "--offline"]).ok();
    assert_eq!(
        records(&ctx),
        before,
        "old records are rewritten as ExtractRecord"
    );
}

/// `gc --dry-run` says what it would remove and why each kept thing stays.
#[test]
fn gc_dry_run_says_why_each_kept_thing_is_kept() {
    let ctx = TestContext::new();
    ctx.net(&["lock"]).ok();
    ctx.net(&["build", "--node", "worker1"]).ok();
    crate::set_verbosity(&ctx, 3);
    ctx.net(&["build", "--node", "worker1"]).ok();
    let v = ctx
        .run(&["gc", "--dry-run", "--keep-generations", "1", "--json"])
        .ok()
        .json();
    let id = |k: &str, i: usize| v[k][i].as_str().unwrap().to_string();
    let kept = |k: &str, i: usize| v["kept_reasons"][k][i]["id"].as_str().unwrap().to_string();
    let (old_image, old_layer) = (id("removed_images", 0), id("removed_layers", 0));
    let (image, layer0, layer1) = (kept("images", 0), kept("layers", 0), kept("layers", 1));
    assert!(layer0 < layer1, "kept layers are listed by id");
    let r = ctx
        .run(&["-v", "gc", "--dry-run", "--keep-generations", "1"])
        .ok();
    assert_eq!(
        r.stdout,
        format!(
            "would remove generation worker1@1
would remove image {old_image}
would remove layer {old_layer}
would remove the SBOM and signatures of image {old_image}
keep generation worker1@2: current
keep image {image}: used by worker1@2
keep layer {layer0}: used by worker1@2
keep layer {layer1}: used by worker1@2
keep 39 store objects: used by a kept image
keep 3 store objects: locked artifact in lockfiles/kubenet.lock
would free 1 generation, 1 image, 1 layer, 1 store object, 0 other files: 190.6 KiB; kept 1 generation, 1 image, 2 layers, 42 store objects
"
        )
    );
    // Without --keep-generations every generation stays, and says so; a rolled-back node's
    // newer generation is kept among the newest.
    ctx.run(&["rollback", "worker1"]).ok();
    let r = ctx.run(&["gc", "--dry-run", "-v"]).ok();
    r.stdout_has("keep generation worker1@1: current\nkeep generation worker1@2: kept: no --keep-generations\n");
    ctx.run(&["gc", "--dry-run", "--keep-generations", "1", "-v"])
        .ok()
        .stdout_has(
            "keep generation worker1@1: current\nkeep generation worker1@2: among the newest 1\n",
        );
}

/// Issue 25: `gc --dry-run` over 20,000 generations took 722 MB (every kept record held until
/// the sweep; BENCHMARKS.md has the number now). Each record is reduced and dropped as it is
/// read: generations of an image already read still count, each as a user of the image and of
/// its layers, and a damaged one still stops gc.
#[test]
fn gc_over_many_generations_of_one_image_keeps_and_names_each() {
    let ctx = crate::built();
    let gens = ctx.path().join("out/nodes/worker1/generations");
    let first = gens.join("1");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("generation.json")).unwrap()).unwrap();
    let link = std::fs::read_link(first.join("image")).unwrap();
    for n in 2..=40u32 {
        let d = gens.join(n.to_string());
        std::fs::create_dir(&d).unwrap();
        let mut m = meta.clone();
        m["number"] = n.into();
        std::fs::write(d.join("generation.json"), serde_json::to_vec(&m).unwrap()).unwrap();
        std::fs::hard_link(first.join("manifest.json"), d.join("manifest.json")).unwrap();
        std::os::unix::fs::symlink(&link, d.join("image")).unwrap();
    }
    let v = ctx.run(&["gc", "--dry-run", "--json"]).ok().json();
    assert_eq!(v["kept_generations"], 45, "{v}");
    assert_eq!(v["removed_objects"], 0, "{v}");
    let id = crate::current_id(&ctx, "worker1");
    let image = v["kept_reasons"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap();
    assert_eq!(image["used_by"].as_array().unwrap().len(), 40);
    let layers = v["kept_reasons"]["layers"].as_array().unwrap();
    let users = |l: &serde_json::Value| {
        l["used_by"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u.as_str().unwrap().starts_with("worker1@"))
            .count()
    };
    assert_eq!(layers.iter().filter(|l| users(l) == 40).count(), 2, "{v}");
    // A damaged record of a repeated image still stops gc.
    let d = gens.join("7");
    std::fs::remove_file(d.join("manifest.json")).unwrap();
    std::fs::write(d.join("manifest.json"), b"{}").unwrap();
    ctx.run(&["gc", "--dry-run"]).fails();
}
