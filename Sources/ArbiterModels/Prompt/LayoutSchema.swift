// The JSON Schema of prompt layout files (Prompt/Schemas/layout.schema.json, also at Schemas/ in the
// repository for editors), and the full check of a layout file: schema, then decoding and the layout's rules.
import ArbiterFormats
import Foundation

extension PromptLayout {
    /// The schema file shipped with the library.
    public static var schemaURL: URL? {
        Bundle.module.url(forResource: "layout.schema", withExtension: "json", subdirectory: "Schemas")
    }

    /// The layout schema.
    public static func schema() throws -> JSONSchema {
        try JSONSchema(resource: schemaURL, name: "layout.schema.json", owner: "ArbiterModels")
    }

    /// The file of a built-in layout (`llava-1.5`, `raw`, `qwen2-vl`), or nil.
    public static func builtinURL(_ name: String) -> URL? {
        Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Layouts")
    }

    /// A layout file (or built-in name) checked against the schema first — unknown keys, wrong types, pieces
    /// with both or neither of "text" and "slot" — then decoded and checked by `validate`.
    public static func checked(_ nameOrPath: String) throws -> PromptLayout {
        let url: URL
        if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") {
            url = URL(fileURLWithPath: nameOrPath)
        } else {
            guard let file = builtinURL(nameOrPath) else { return try builtin(nameOrPath) }   // throws, naming them
            url = file
        }
        try schema().validate(fileAt: url)
        return try PromptLayout(url: url)
    }
}
