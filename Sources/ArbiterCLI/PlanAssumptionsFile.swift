// `verify --plan --assume-from results.json`: the plan of a re-run, with what an earlier run found in place of
// the plan's assumptions — its failure counts (α selection, amplification) and its top head set (the layers
// every head-set pass resumes at, and the random sets drawn from them).
import ArbiterAnalyses
import ArbiterInterventions
import Foundation

enum PlanAssumptionsFile {
    /// `assumptions` with the earlier run's findings for the model shown as `model` in the results.json at
    /// `path` (the file's only model, or the one of that name). Errors name the file and the field.
    /// `shape`: the planned model's layers, heads per layer and top-set size, when known, to check the set against.
    static func apply(_ path: String, model: String, to assumptions: PlanAssumptions,
                      shape: (layers: Int, heads: Int, setSize: Int)?) throws -> PlanAssumptions {
        func fail(_ what: String) -> CLIError { CLIError("--assume-from \(path): \(what)") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw fail("cannot be read (\(error.localizedDescription))")
        }
        guard let top = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any]
        else { throw fail("is not a JSON object (give the results.json of `verify --out`)") }
        guard let models = top["models"] as? [[String: Any]], !models.isEmpty else {
            throw fail("field 'models' is missing or empty (give the results.json of `verify --out`)")
        }
        let results = models.compactMap { $0["results"] as? [String: Any] }
        guard results.count == models.count else { throw fail("a model of field 'models' has no object 'results'") }
        let names = results.map { $0["model"] as? String ?? "?" }
        let chosen: [String: Any]
        if results.count == 1 {
            chosen = results[0]
        } else if let k = names.firstIndex(of: model) {
            chosen = results[k]
        } else {
            throw fail("holds the models \(names.joined(separator: ", ")), none named '\(model)'")
        }
        let name = chosen["model"] as? String ?? "?"
        guard let interventions = chosen["interventions"] as? [String: Any] else {
            throw fail("model '\(name)': field 'results.interventions' is missing")
        }
        func count(_ field: String) throws -> Int {
            guard let n = interventions[field] as? Int, n >= 0 else {
                throw fail("model '\(name)': field 'results.interventions.\(field)' is missing or not a count")
            }
            return n
        }
        guard let heads = interventions["heads"] as? [[String: Any]] else {
            throw fail("model '\(name)': field 'results.interventions.heads' is missing or not a list")
        }
        let set = try heads.enumerated().map { k, h -> HeadIndex in
            guard let layer = h["layer"] as? Int, let head = h["head"] as? Int, layer >= 0, head >= 0 else {
                throw fail("model '\(name)': item \(k) of 'results.interventions.heads' is not a {layer, head} pair")
            }
            return HeadIndex(layer: layer, head: head)
        }
        if let shape {
            guard set.count == shape.setSize, Set(set).count == set.count else {
                throw fail("model '\(name)': 'results.interventions.heads' holds \(set.count) heads "
                           + "(\(Set(set).count) distinct), but the planned run's top set is \(shape.setSize) "
                           + "heads: the results come from another model or --head-fraction")
            }
            if let outside = set.first(where: { $0.layer >= shape.layers || $0.head >= shape.heads }) {
                throw fail("model '\(name)': 'results.interventions.heads' names head \(outside), outside the "
                           + "planned model's \(shape.layers) layers × \(shape.heads) heads")
            }
        }
        let failed = try count("failedCount"), extra = try count("extraFailedCount")
        guard extra <= failed else {
            throw fail("model '\(name)': 'extraFailedCount' \(extra) exceeds 'failedCount' \(failed)")
        }
        var a = assumptions
        a.calibrationFailed = try count("calibrationFailedCount")
        a.heldOutFailed = failed - extra
        a.topSet = set
        a.topSetFirstLayer = set.map(\.layer).min() ?? 0
        return a
    }
}
