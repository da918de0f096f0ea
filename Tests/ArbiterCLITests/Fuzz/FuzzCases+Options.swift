// CLI option cases: numbers out of range or malformed, interventions that do not parse or point outside the
// model, empty strings, missing files, folders where files are expected, and a few spellings that must give
// the same answer.
import Foundation

extension FuzzCatalog {
    static func options() -> [FuzzCase] {
        var list = CaseList(.options, "options")
        let llama = FuzzBases.llama
        let llava = FuzzBases.llava
        /// Arguments appended to (or replacing) a base's.
        func extra(_ base: Base, _ name: String, _ e: Expectation, _ more: [String]) {
            list.add(base, name, e) { _, arguments in arguments += more }
        }
        func replace(_ base: Base, _ name: String, _ option: String, _ value: String, _ e: Expectation) {
            list.add(base, name, e) { _, arguments in
                if let i = arguments.firstIndex(of: option) {
                    arguments[i + 1] = value
                } else {
                    arguments += [option, value]
                }
            }
        }
        // --top
        for value in ["0", "-1", "1001", "9223372036854775808", "abc", "", "2.5", " 5"] {
            extra(llama, "top=\(value)", .refuse("--top"), ["--top=\(value)"])
        }
        extra(llama, "top-5-spelled-apart", .same, ["--top", "5"])
        extra(llama, "top-1000", .refuseOrSucceed("--top"), ["--top", "1000"])
        // --ids
        for (label, value) in [
            ("empty", ""), ("letters", "a,b"), ("commas", ",,,"), ("negative", "1,-2,3"),
            ("beyond-vocab", "1,512"), ("huge", "1,99999999999"), ("beyond-int64", "1,9223372036854775808"),
            ("fraction", "1,2.5"), ("hex", "0x10"),
            ("longer-than-positions", (0..<200).map { _ in "5" }.joined(separator: ",")),
        ] {
            let e: Expectation =
                label == "longer-than-positions" ? .refuse("max_position_embeddings") : .refuse("--ids")
            replace(llama, "ids=\(label)", "--ids", value, e)
        }
        replace(llama, "ids-with-spaces", "--ids", "1, 2, 3, 4, 5, 6, 7, 8", .same)
        // Interventions.
        let knockouts = [
            "", "image->", "->last@0", "image->last@", "image->last@a", "colour->last@0", "image->last@0-",
            "image->last@2-1", "image->last@99", "image->last@-1", "0-4->last@0/heads=99", "0-4->last@0/heads=",
            "0-4->last@0/heads=-1", "0-9999->last@0", "5-2->last@0", "image->last@0@1", "image->last->all@0",
            "9223372036854775807->last@0", "0->last@0-9223372036854775807", "image->instruction@0",
        ]
        for (i, k) in knockouts.enumerated() {
            extra(llama, "knockout-\(i)=\(k.isEmpty ? "empty" : k)", .refuse("--knockout"), ["--knockout", k])
        }
        extra(llama, "knockout-valid", .refuseOrSucceed("--knockout"), ["--knockout", "0-3->last@0-2"])
        for v in ["", "1.99", "99.0", "a.b", "1", "1.2.3", "-1.0", ",", "1.0,,2.0", "0.4", "3.0"] {
            extra(llama, "block-heads=\(v.isEmpty ? "empty" : v)", .refuse("--block-heads"), ["--block-heads", v])
        }
        for v in ["1.0x", "1.0xabc", "1.0x1e400", "x2", "1.0", "1.0xnan", "1.0x-inf", "9.9x2", "1.0x2x3"] {
            extra(llama, "amplify-heads=\(v)", .refuse("--amplify-heads"), ["--amplify-heads", v])
        }
        for v in ["", "0x", "99x0", "0-1x", "axb", "0xnan", "2-0x1", "0-99999999999x1", "x"] {
            extra(llama, "scale-mlp=\(v.isEmpty ? "empty" : v)", .refuse("--scale-mlp"), ["--scale-mlp", v])
        }
        extra(
            llama, "scale-mlp-identity", .init(refusal: false, success: .baselineTop, naming: []),
            ["--scale-mlp", "0-2x1"])
        extra(
            llama, "block-and-amplify-valid", .refuseOrSucceed("--block-heads"),
            ["--block-heads", "0.1", "--amplify-heads", "1.2x2"])
        // Files and folders given as options.
        replace(llama, "model=missing", "--model", "/nonexistent/arbiter-fuzz-model", .refuse("arbiter-fuzz-model"))
        replace(llama, "model=empty", "--model", "", .refuse("--model"))
        list.add(llama, "model=file", .refuse("model.safetensors")) { ws, arguments in
            arguments[arguments.firstIndex(of: "--model")! + 1] = ws.path("model/model.safetensors")
        }
        list.add(llama, "model=empty-folder", .refuse("config.json")) { ws, arguments in
            try ws.makeFolder("empty")
            arguments[arguments.firstIndex(of: "--model")! + 1] = ws.path("empty")
        }
        replace(llama, "model=root", "--model", "/", .refuse("config.json"))
        list.add(llava, "image=missing", .refuse("nowhere.png")) { ws, arguments in
            arguments[arguments.firstIndex(of: "--image")! + 1] = ws.path("nowhere.png")
        }
        list.add(llava, "image=folder", .refuse("model")) { ws, arguments in
            arguments[arguments.firstIndex(of: "--image")! + 1] = ws.path("model")
        }
        replace(llava, "image=empty", "--image", "", .refuse("--image"))
        list.add(llava, "image=config", .refuse("config.json")) { ws, arguments in
            arguments[arguments.firstIndex(of: "--image")! + 1] = ws.path("model/config.json")
        }
        for (label, value) in [
            ("empty", ""), ("unknown-name", "vicuna-9"), ("missing-file", "/nonexistent/layout.json"),
            ("folder", "/tmp/"), ("dot", "."),
        ] {
            extra(llava, "layout=\(label)", .refuse("--layout"), ["--layout", value])
        }
        extra(llava, "layout=builtin-raw", .refuseOrSucceed("--layout"), ["--layout", "raw"])
        extra(llava, "layout=builtin-llava", .same, ["--layout", "llava-1.5"])
        // Prompts.
        replace(llava, "prompt=empty", "--prompt", "", .refuse("question"))
        replace(llava, "prompt=5-lines", "--prompt", "a\nb\nc\nd\ne", .refuse("--prompt"))
        replace(llava, "prompt=1MB", "--prompt", String(repeating: "circle ", count: 14_000), .refuse("question"))
        replace(
            llava, "prompt=control-characters", "--prompt", "What\u{1} color\u{7F} is\u{202E} it?",
            .refuseOrSucceed("--prompt"))
        extra(llava, "question=empty", .refuse("question"), ["--question", ""])
        extra(llava, "prompt-and-ids", .refuse("--ids"), ["--ids", "1,2"])
        list.add(llama, "ids-with-image", .refuse("--image")) { ws, arguments in
            arguments += [
                "--image", Repository.root.appendingPathComponent("GoldenData/images/llava-test-47x39.png").path,
            ]
        }
        extra(llama, "cache=unknown-hook", .refuseOrSame("--cache"), ["--cache", "blocks.99.hook_nothing"])
        extra(llama, "dump=empty", .refuse("--dump"), ["--dump", ""])
        extra(llama, "dump=missing-folder", .refuse("--dump"), ["--dump", "/nonexistent/out.h5"])
        // Other commands.
        let tinyLlava = Repository.model("tiny-llava").path
        let shortcut = Repository.model("arbiter-shortcut").path
        let plain = Base(id: "cmd") { _ in [] }
        func command(_ name: String, _ e: Expectation, _ arguments: [String]) {
            list.add(plain, name, e) { _, a in a = arguments }
        }
        for (label, value) in [("0", "0"), ("-3", "-3"), ("huge", "1000000000"), ("fraction", "2.5"), ("empty", "")] {
            command("eval-count=\(label)", .refuse("--count"), ["eval", "--model", shortcut, "--count=\(value)"])
            command("verify-count=\(label)", .refuse("--count"), ["verify", "--model", tinyLlava, "--count=\(value)"])
            command(
                "verify-random-sets=\(label)", .refuse("--random-sets"),
                ["verify", "--model", tinyLlava, "--random-sets=\(value)"])
            command(
                "generate-count=\(label)", .refuse("--count"),
                ["data", "generate", "--count=\(value)", "--seed", "1", "--out", "x"])
        }
        for (label, value) in [("unknown", "fast"), ("no-count", "dla"), ("zero", "dla:0"), ("negative", "dla:-1"),
                               ("letters", "last-position:x"), ("huge", "last-position:4611686018427387904"),
                               ("empty", ""), ("exact-count", "exact:2")] {
            command(
                "verify-head-ranking=\(label)", .refuse("--head-ranking"),
                ["verify", "--model", tinyLlava, "--head-ranking=\(value)"])
        }
        command(
            "eval-split=unknown", .refuse("--split"), ["eval", "--model", shortcut, "--count", "2", "--split", "test"])
        command("eval-seed=negative", .refuse("--seed"), ["eval", "--model", shortcut, "--seed", "-1"])
        command("eval-seed=letters", .refuse("--seed"), ["eval", "--model", shortcut, "--seed", "abc"])
        command(
            "eval-data=missing", .refuse("nowhere"), ["eval", "--model", shortcut, "--data", "/nonexistent/nowhere"])
        command("eval-data=empty", .refuse("--data"), ["eval", "--model", shortcut, "--data", ""])
        command(
            "eval-model=missing", .refuse("arbiter-fuzz-model"), ["eval", "--model", "/nonexistent/arbiter-fuzz-model"])
        command("verify-model=none", .refuse("--model"), ["verify"])
        command(
            "verify-data=missing", .refuse("nowhere"),
            ["verify", "--model", tinyLlava, "--data", "/nonexistent/nowhere"])
        command("verify-out=empty", .refuse("--out"), ["verify", "--model", tinyLlava, "--out", ""])
        command("verify-out=dot", .refuse("--out"), ["verify", "--model", tinyLlava, "--out", "."])
        command("verify-out=root", .refuse("--out"), ["verify", "--model", tinyLlava, "--out", "/"])
        command(
            "verify-store-golden=empty", .refuse("--store-golden"),
            ["verify", "--model", tinyLlava, "--store-golden", ""])
        for (label, value) in [
            ("0", "0"), ("15", "15"), ("1025", "1025"), ("-1", "-1"), ("huge", "9223372036854775807"),
        ] {
            command(
                "generate-image-size=\(label)", .refuse("--image-size"),
                ["data", "generate", "--count", "2", "--seed", "1", "--out", "x", "--image-size", value])
        }
        for (label, value) in [
            ("letters", "conflict=abc"), ("negative", "conflict=-1"), ("empty", ""), ("unknown", "puzzle=1"),
            ("all-zero", "conflict=0,consistent=0"), ("nan", "conflict=nan"), ("no-equals", "conflict"),
        ] {
            command(
                "generate-mix=\(label)", .refuse("--mix"),
                ["data", "generate", "--count", "2", "--seed", "1", "--out", "x", "--mix", value])
        }
        for (label, value) in [("unknown", "texture"), ("empty", ""), ("commas", ",,")] {
            command(
                "generate-tasks=\(label)", .refuse("--tasks"),
                ["data", "generate", "--count", "2", "--seed", "1", "--out", "x", "--tasks", value])
        }
        for value in ["-1", "101", "abc"] {
            command(
                "generate-noisy-percent=\(value)", .refuse("--noisy-percent"),
                ["data", "generate", "--count", "2", "--seed", "1", "--out", "x", "--noisy-percent", value])
        }
        command(
            "generate-seed=negative", .refuse("--seed"),
            ["data", "generate", "--count", "2", "--seed", "-1", "--out", "x"])
        command(
            "generate-out=empty", .refuse("--out"), ["data", "generate", "--count", "2", "--seed", "1", "--out", ""])
        command("check=nothing", .refuse("--data"), ["data", "check"])
        command("check=two-sources", .refuse("--data"), ["data", "check", "--data", "a", "--mc2", "b"])
        command("check-data=missing", .refuse("nowhere"), ["data", "check", "--data", "/nonexistent/nowhere"])
        command(
            "check-paper-set=missing", .refuse("nowhere.json"),
            ["data", "check", "--paper-set", "/nonexistent/nowhere.json"])
        command("check-mc2=folder", .refuse("--mc2"), ["data", "check", "--mc2", "/tmp"])
        command(
            "check-tokenizer=missing", .refuse("nowhere.json"),
            [
                "data", "check", "--data", Repository.root.appendingPathComponent("GoldenData/heldout").path,
                "--tokenizer", "/nonexistent/nowhere.json",
            ])
        command("compare-golden=missing", .refuse("nowhere.h5"), ["compare", "--golden", "/nonexistent/nowhere.h5"])
        command("compare-golden=empty", .refuse("--golden"), ["compare", "--golden", ""])
        command(
            "compare-models=missing", .refuse("tiny-llama"),
            [
                "compare", "--golden",
                Repository.root.appendingPathComponent("GoldenData/activations/tiny-llama/random-24.h5").path,
                "--models", "/nonexistent/models",
            ])
        command(
            "hooks-model=missing", .refuse("arbiter-fuzz-model"),
            ["hooks", "--model", "/nonexistent/arbiter-fuzz-model"])
        command("hooks-filter=empty", .refuseOrSucceed("--filter"), ["hooks", "--model", tinyLlava, "--filter", ""])
        command("unknown-subcommand", .refuse("frobnicate"), ["frobnicate"])
        command("unknown-option", .refuse("--frobnicate"), ["run", "--model", tinyLlava, "--ids", "1", "--frobnicate"])
        command("option-without-value", .refuse("--model"), ["run", "--ids", "1", "--model"])
        command("no-arguments", .refuseOrSucceed("arbiter"), [])
        return list.cases
    }
}
