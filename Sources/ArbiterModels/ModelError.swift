// Errors of model construction and runs (bad configs, unknown model types, bad inputs to a forward pass).

public enum ModelError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(file: String, problem: String)
    case unsupportedModelType(String, file: String, supported: [String])
    case invalidInput(String)
    case unknownHook(names: [String], model: String, suggestions: [String])
    case nonFinite(hook: String, layer: Int?, position: Int, value: Float)

    public var description: String {
        switch self {
        case .invalidConfiguration(let file, let problem):
            return "\(file): invalid configuration: \(problem)"
        case .unsupportedModelType(let type, let file, let supported):
            return "\(file): unsupported model_type '\(type)'; Arbiter supports: \(supported.joined(separator: ", "))"
        case .invalidInput(let m):
            return "invalid input: \(m)"
        case .unknownHook(let names, let model, let suggestions):
            return "unknown hook name\(names.count > 1 ? "s" : "") \(names.joined(separator: ", ")) for \(model); "
                + "did you mean \(suggestions.joined(separator: ", "))?"
        case .nonFinite(let hook, let layer, let position, let value):
            return "non-finite value \(value) first appeared at \(hook)\(layer.map { " (layer \($0))" } ?? ""), "
                   + "position \(position)"
        }
    }
}
