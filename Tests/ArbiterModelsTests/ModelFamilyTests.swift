// The family boundary: one registry entry per family, every bundled model reached through it, and no code
// outside a family's folder naming the family's types (the session, the golden comparison, the analyses, the
// plan, the claims and the CLI call `ArbiterModel` / `ImageModel` only).
import ArbiterFormats
import ArbiterModels
import ArbiterTensor
import Foundation
import Testing

@Suite("Model families")
struct ModelFamilyTests {
    /// Family folders (under Sources/ArbiterModels) whose every declared type is private to the folder.
    static let familyFolders = ["Llava", "QwenVL", "Qwen3VL", "InternVL"]
    /// A family folder may build on the folder of the family it descends from (Qwen3-VL reuses Qwen2-VL's image
    /// processor, vision attention, token layout and position ids): still no code outside both names them.
    static let buildsOn = ["Qwen3VL": ["QwenVL"]]

    @Test("every model_type belongs to exactly one family; each family's default layout is built in")
    func registry() throws {
        let types = ModelRegistry.families.flatMap(\.modelTypes)
        #expect(Set(types).count == types.count, "a model_type in two families: \(types)")
        #expect(ModelRegistry.supportedTypes == types.sorted())
        #expect(Set(ModelRegistry.families.map(\.name)).count == ModelRegistry.families.count)
        for family in ModelRegistry.families {
            _ = try PromptLayout.builtin(family.defaultLayout)
            for type in family.modelTypes { #expect(ModelRegistry.family(of: type)?.name == family.name) }
        }
        #expect(ModelRegistry.family(of: "mllama") == nil)
    }

    @Test("each bundled model loads through its family, an ImageModel when the family says so; its shape agrees",
          arguments: ["tiny-llama", "tiny-qwen2", "tiny-llava", "tiny-llava-hub", "tiny-qwen2-vl", "tiny-qwen2_5-vl",
                      "tiny-internvl", "tiny-internvl-hub", "tiny-internvl-rms", "tiny-qwen3-vl"])
    func bundled(_ name: String) throws {
        let folder = Repository.models.appendingPathComponent(name)
        let model = try ModelRegistry.load(folder)
        let family = try #require(ModelRegistry.family(of: model.modelType))
        #expect(family.takesImages == (model.images != nil), "\(name): \(family.name)")
        let (_, shape) = try ModelRegistry.shape(folder)
        #expect(shape.decoder.layers == model.decoder.configuration.layers)
        #expect(shape.decoder.hiddenSize == model.decoder.configuration.hiddenSize)
        #expect((shape.vision != nil) == family.takesImages && (shape.imageSide != nil) == family.takesImages)
        if let images = model.images {
            #expect(shape.imageSide == images.defaultImageSide)
            // The session draws images of that side: their token count is the shape's.
            let session = try ModelSession(directory: folder)
            let side = try #require(session.imageSize)
            let input = try session.prepare(PromptFields(question: "What is shown?"),
                                            image: RGBImage(width: side, height: side, red: 9, green: 99, blue: 199))
            #expect(input.image?.tokenCount == shape.vision?.imageTokens, "\(name)")
            #expect(input.ids.filter { $0 == images.imageToken.id }.count == input.image?.tokenCount)
            // The family's forward and the session's run are the same pass (one BLAS thread: multithreaded
            // sgemm may split sums differently from call to call).
            let (viaSession, viaModel) = try BLAS.withSingleThread {
                (try session.run(input).logits, try model.forward(ids: input.ids, image: input.image, logits: .last).logits)
            }
            #expect(viaSession?.scalars == viaModel?.scalars && viaSession != nil)
        }
    }

    @Test("an image given to a text model is refused, naming the model")
    func textModelRefusesImages() throws {
        let model = try ModelRegistry.load(Repository.models.appendingPathComponent("tiny-llama"))
        let image = PreparedImage(pixelValues: Tensor(shape: [3, 2, 2], scalars: Array(repeating: 0, count: 12)),
                                  tokenCount: 1)
        let e = try #require(throws: ModelError.self) { try model.forward(ids: [1, 2], image: image) }
        #expect("\(e)".contains("takes no images"), "\(e)")
    }

    /// Types declared at the top level of a family's folder (classes, structs, enums, protocols, actors).
    static func declaredTypes(in folder: URL) throws -> [String: String] {
        var out: [String: String] = [:]
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".swift") }
        let declaration = try Regex(#"^(?:public |package |internal |fileprivate |private |final |indirect )*"#
                                    + #"(?:class|struct|enum|protocol|actor) ([A-Za-z_][A-Za-z0-9_]*)"#)
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            for line in text.split(separator: "\n") {
                if let m = try declaration.firstMatch(in: String(line)), let name = m.output[1].substring {
                    out[String(name)] = file
                }
            }
        }
        return out
    }

    @Test("no source file outside a family's folder names a type the folder declares")
    func familyTypesStayInTheirFolder() throws {
        let sources = Repository.root.appendingPathComponent("Sources")
        var declared: [String: String] = [:]
        for family in Self.familyFolders {
            let types = try Self.declaredTypes(in: sources.appendingPathComponent("ArbiterModels/\(family)"))
            #expect(!types.isEmpty, "\(family): no declarations found (moved?)")
            for (type, file) in types { declared[type] = "\(family)/\(file)" }
        }
        declared["CausalLanguageModel"] = "Decoder/CausalLanguageModel.swift"
        #expect(declared["LlavaModel"] != nil && declared["QwenVLModel"] != nil)
        var offenders: [String] = []
        let enumerator = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)
        while let url = enumerator?.nextObject() as? URL {
            guard url.pathExtension == "swift" else { continue }
            let relative = String(url.path.dropFirst(sources.path.count + 1))
            let text = try String(contentsOf: url, encoding: .utf8)
            let folder = relative.split(separator: "/").dropFirst().first.map(String.init) ?? ""
            let allowed = relative.hasPrefix("ArbiterModels/") ? [folder] + (Self.buildsOn[folder] ?? []) : []
            for (type, home) in declared where !allowed.contains(String(home.split(separator: "/")[0])) {
                if text.contains(try Regex("\\b\(type)\\b")) { offenders.append("\(relative) names \(type) (\(home))") }
            }
        }
        #expect(offenders.isEmpty, "\(offenders.sorted().joined(separator: "\n"))")
    }
}
