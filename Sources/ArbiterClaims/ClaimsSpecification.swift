// The claims of "Instruction Anchors" (arXiv 2602.03677) as executable hypotheses: one readable, versioned
// specification. Each claim names the paper sentence it encodes (paraphrased), the statistic (computed in
// ClaimStatistics.swift under the same id), the thresholds with their source, the control it must beat, and
// the splits and seeds. Every claim has a full threshold and a weaker directional one, and says when it is
// inconclusive (cannot be decided on the items at hand, whatever the thresholds).

public struct ClaimSpecification: Sendable, Codable, Equatable {
    public let id: String
    public let title: String
    /// The paper's sentence, paraphrased.
    public let paper: String
    /// What is measured (the statistic's definition).
    public let statistic: String
    /// The full threshold, in words, and where it comes from.
    public let threshold: String
    public let thresholdSource: String
    /// The weaker, directional threshold.
    public let directional: String
    /// The control the statistic must beat.
    public let control: String
    /// Which split the statistic is computed on.
    public let split: String
}

public enum Claims {
    /// Version of this specification; results and golden verdicts record it.
    /// 2: the head claims test against ≥ 200 layer-matched random sets with an empirical p-value, specificity is
    /// an equivalence per item kind, and a claim that cannot be decided is inconclusive; anchors and
    /// shallow-nonselective read the joint cue edges, shallow-nonselective is an equivalence test, and
    /// deep-selective an interval test at the anchors (docs/metrics.md, "Claim verdicts").
    /// 3: selection corrected — anchors picks its cells and shallow-nonselective its band on the calibration
    /// items and tests them on the held-out ones; every directional verdict rests on an interval (anchors: a
    /// lower bound of |anchor| − |direct|; shallow-nonselective: an equivalence with a wider margin; mlp-inertia
    /// holds only when each target's CI is below 0 too); every sub-statistic is stored (`ClaimMeasure`).
    public static let version = 3

    /// Numeric thresholds, named so that a claim's test, statistic and threshold are one hop apart.
    public enum Threshold {
        /// anchors: |strongest cue→instruction shift| ≥ k × |strongest direct cue→last shift|.
        public static let anchorsRatio = 2.0
        /// shallow non-selective transfer: |instruction selectivity| in the transfer band.
        public static let nonSelectiveSI = 0.10
        public static let nonSelectiveSIDirectional = 0.20
        /// … and the two targets' band shifts alike: their difference's 95% CI within ± this × their mean
        /// magnitude (version 2: replaces "both negative"; an effect 4.5× larger on one target is not alike).
        public static let nonSelectiveEquivalence = 0.5
        /// … directionally: within ± this × their mean magnitude (version 3: an interval instead of the point
        /// difference; one target's shift may be up to 3× the other's).
        public static let nonSelectiveEquivalenceDirectional = 1.0
        /// deep selective arbitration: logit-lens agreement in the deepest quarter (paper: > 95%).
        public static let deepAgreement = 0.95
        /// … and the shallowest quarter stays at most this.
        public static let shallowAgreementMax = 0.80
        /// 5% heads, blocking: relative MFR drop (paper v1: ~60%).
        public static let blockingDrop = 0.60
        /// 5% heads, amplification: share of failed held-out samples fixed (paper v1: ~60%).
        public static let amplificationFix = 0.60
        /// specificity: change of consistent-sample accuracy, in accuracy units (5 points).
        public static let specificityMaxChange = 0.05
        public static let specificityMaxChangeDirectional = 0.10
        /// heads-blocking, heads-amplification: the empirical p-value against the random head sets must be below
        /// this (one-sided, random sets as the null).
        public static let significance = 0.05

        // Minimum sizes below which a claim is inconclusive (never holds or fails).
        /// anchors, shallow-nonselective, deep-selective, mlp-inertia: conflict items of each instruction target
        /// in each split (calibration, held-out). Their bootstrap intervals over 1–3 items are too narrow to mean
        /// anything (one item has a zero-width interval); 4 is the analyses' default minimum, so only a run made
        /// with a lower `--minimum-per-target` (a trial run) reaches this.
        public static let minimumPerTargetSplit = 4
        /// Random head sets: the p-value's resolution 1/(1 + N) must be far below the 0.05 level (1/201 ≈ 0.005),
        /// so that the verdict is not decided by the p-value's granularity (20 sets cannot give p < 0.05).
        public static let minimumRandomSets = 200
        /// heads-blocking: held-out conflict items. An MFR on 30 items has a binomial standard error ≤ 0.09,
        /// so a relative drop of the paper's size (~60%) stands out of it; on fewer, one item moves the MFR by
        /// more than 3 points.
        public static let minimumHeldOutConflict = 30
        /// heads-amplification: failed held-out conflict items. A fix rate on n items has a 95% interval of
        /// about ±1.96·√(0.25/n): ±0.18 at 30, too wide below that to tell the paper's 0.6 from a coin.
        public static let minimumFailed = 30
        /// specificity: held-out items of each kind (consistent, image_only, text_only). From 10 items on, one
        /// item that changes its answer moves the accuracy by ≤ 0.10, the directional margin; below that a
        /// single item decides the verdict.
        public static let minimumAbilityItems = 10
        /// shallow-nonselective: the instruction tokens' mean attention mass on the cues (image + context) in
        /// the band. The selectivity index divides the image mass by this; below 1e-3 of the attention (the
        /// controls' anchors put ~0.5 there, a head ignoring the cues ~1e-8) it is a ratio of rounding noise.
        public static let minimumCueMass = 1e-3
    }

    public static let all: [ClaimSpecification] = [
        ClaimSpecification(
            id: "anchors", title: "Instruction tokens are the structural anchors of arbitration",
            paper: "Instruction tokens function as structural anchors for modality arbitration: cues reach the answer "
                   + "through them.",
            statistic: "the held-out knockout shift I(ℓ) at the cell (edge, target, layer) where the calibration "
                       + "items' cue→instruction shift is most negative (cues→instruction, i.e. image and context "
                       + "together as in the paper's figures; context→instruction; image→instruction), vs the "
                       + "held-out |I(ℓ)| at the cell where the calibration items' direct cue→last shift is "
                       + "largest in magnitude (cues→last, context→last, image→last)",
            threshold: "held-out anchor shift < 0 with CI below 0, and |anchor| − "
                       + "\(Threshold.anchorsRatio)·|direct| with a 95% lower bound above 0",
            thresholdSource: "our choice; the paper's Qwen2.5-VL figures give −0.57/−0.81 vs ≈0 and "
                             + "−0.09 (ratio > 6)",
            directional: "held-out anchor shift with CI below 0, and |anchor| − |direct| with a 95% lower "
                         + "bound above 0",
            control: "direct cue→last knockout, picked the same way (an extreme against an extreme)",
            split: "cells picked on the calibration conflict items, measured on the held-out ones; bootstrap "
                   + "seeds in results"),
        ClaimSpecification(
            id: "shallow-nonselective",
            title: "Shallow attention moves cues into the instruction tokens non-selectively",
            paper: "Shallow attention layers perform non-selective information transfer, routing multimodal cues to "
                   + "the instruction anchors as a latent buffer.",
            statistic: "on the joint cues→instruction edge, in its transfer band (picked on the calibration items: "
                       + "layers where either target's shift is ≥ 50% of the peak): each target's mean held-out "
                       + "shift, the difference of the two with its 95% CI, and the mean |selectivity index| of "
                       + "instruction-token attention to image vs context",
            threshold: "both targets' band shifts < 0 with CIs below 0; their difference's CI within "
                       + "±\(Threshold.nonSelectiveEquivalence) × their mean magnitude (equivalence); mean |SI| in "
                       + "the band ≤ \(Threshold.nonSelectiveSI) with its 95% interval inside "
                       + "±\(Threshold.nonSelectiveSI); the band in the first half of the layers",
            thresholdSource: "our choice (the paper gives no number for selectivity); the equivalence margin: an "
                             + "effect twice as large on one target is not 'alike'",
            directional: "both targets' band shifts < 0 with CIs below 0, their difference's CI within "
                         + "±\(Threshold.nonSelectiveEquivalenceDirectional) × their mean magnitude, and mean |SI| "
                         + "with its interval within ±\(Threshold.nonSelectiveSIDirectional)",
            control: "the other instruction target (non-selective ⇔ both hurt alike, attention blind to the "
                     + "instruction)",
            split: "band picked on the calibration conflict items, tested on the held-out ones"),
        ClaimSpecification(
            id: "deep-selective", title: "Deep attention resolves the competition selectively",
            paper: "Modality competition is resolved within deep attention layers guided by the instruction intent; "
                   + "deep-layer decisions at the instruction anchors agree with the final answer.",
            statistic: "logit-lens decision agreement with the final answer (LDAR) at the instruction anchors (mean "
                       + "following score over the instruction tokens), mean over the deepest quarter of layers vs the "
                       + "shallowest quarter",
            threshold: "deep LDAR ≥ \(Threshold.deepAgreement), shallow LDAR ≤ \(Threshold.shallowAgreementMax), "
                       + "the rise (deep − shallow) with its 95% CI above 0, and the anchors' readout carries a "
                       + "decision at all (some layer's mean |s| > 1e-3)",
            thresholdSource: "paper (> 95% agreement in deep layers); shallow bound our choice",
            directional: "deep LDAR > shallow LDAR with the rise's CI above 0",
            control: "shallow layers",
            split: "all conflict items"),
        ClaimSpecification(
            id: "mlp-inertia", title: "MLP layers show semantic inertia",
            paper: "MLP layers exhibit semantic inertia, acting as an adversarial force against the instructed answer.",
            statistic: "total direct logit attribution of the MLP outputs of the deep half of the layers to the "
                       + "following score s",
            threshold: "negative with 95% CI below 0, overall and for each instruction target",
            thresholdSource: "paper (sign); CI our choice",
            directional: "negative with 95% CI below 0 overall",
            control: "zero",
            split: "all conflict items"),
        ClaimSpecification(
            id: "heads-blocking", title: "Blocking 5% of heads cuts modality following",
            paper: "Blocking a sparse set of about 5% of attention heads decreases the modality-following ratio "
                   + "by about 60%.",
            statistic: "relative MFR drop (MFR_base − MFR_blocked)/MFR_base on held-out conflict items when the top "
                       + "5% heads (ranked by causal single-head ablation on the calibration split) are zeroed; "
                       + "empirical p-value against random head sets p = (1 + #{random drop ≥ drop})/(1 + N)",
            threshold: "drop ≥ \(Threshold.blockingDrop) and p < \(Threshold.significance)",
            thresholdSource: "paper v1 abstract (~60%); p-value level our choice",
            directional: "drop > 0 and p < \(Threshold.significance)",
            control: "N ≥ \(Threshold.minimumRandomSets) random head sets (seeded) outside the top set, with as many "
                     + "heads in each layer as the top set (nearest layers when a layer has too few); inconclusive "
                     + "with fewer sets, fewer than \(Threshold.minimumHeldOutConflict) held-out conflict items, a "
                     + "baseline MFR of 0, or a NaN",
            split: "heads ranked on calibration, measured on held-out"),
        ClaimSpecification(
            id: "heads-amplification", title: "Amplifying those heads fixes failures",
            paper: "Targeted amplification of the same heads on failed samples increases the modality-following ratio "
                   + "by about 60%.",
            statistic: "fraction of failed held-out conflict items that follow after the top 5% heads are scaled by α "
                       + "(α chosen on calibration failures from a grid); empirical p-value against the random sets, "
                       + "each scaled by its own α chosen the same way",
            threshold: "≥ \(Threshold.amplificationFix) and p < \(Threshold.significance)",
            thresholdSource: "paper v1 abstract (~60%); p-value level our choice",
            directional: "> 0 and p < \(Threshold.significance)",
            control: "the blocking claim's random head sets, α chosen per set; inconclusive with fewer than "
                     + "\(Threshold.minimumFailed) failed held-out items (none: the model follows every instruction), "
                     + "fewer than \(Threshold.minimumRandomSets) sets, or a NaN",
            split: "α on calibration, measured on held-out"),
        ClaimSpecification(
            id: "specificity", title: "General ability is kept",
            paper: "Manipulating the critical heads changes modality following while general ability is kept.",
            statistic: "per item kind (consistent, image_only, text_only): accuracy after blocking the top 5% heads "
                       + "− before, with a paired bootstrap 95% CI; the headline is the kind with the "
                       + "largest |change|",
            threshold: "for every kind, the change and its CI within ±\(Threshold.specificityMaxChange) (two-sided "
                       + "equivalence; a gain beyond the margin is reported, and is not equivalence)",
            thresholdSource: "our choice, from the paper's 'general ability is kept'",
            directional: "for every kind, the change and its CI within ±\(Threshold.specificityMaxChangeDirectional)",
            control: "the unblocked model; inconclusive with fewer than \(Threshold.minimumAbilityItems) held-out "
                     + "items of a kind, or a NaN",
            split: "held-out consistent, image_only and text_only items"),
    ]

    public static func specification(_ id: String) -> ClaimSpecification? { all.first { $0.id == id } }
}

/// The thresholds the verdicts are computed with: `standard` holds the specification's values
/// (`Claims.Threshold`); other values exist so that tests can check that verdicts are monotone in them.
public struct ClaimThresholds: Sendable, Equatable, CustomStringConvertible {
    public var anchorsRatio = Claims.Threshold.anchorsRatio
    public var nonSelectiveSI = Claims.Threshold.nonSelectiveSI
    public var nonSelectiveSIDirectional = Claims.Threshold.nonSelectiveSIDirectional
    public var nonSelectiveEquivalence = Claims.Threshold.nonSelectiveEquivalence
    public var nonSelectiveEquivalenceDirectional = Claims.Threshold.nonSelectiveEquivalenceDirectional
    public var deepAgreement = Claims.Threshold.deepAgreement
    public var shallowAgreementMax = Claims.Threshold.shallowAgreementMax
    public var blockingDrop = Claims.Threshold.blockingDrop
    public var amplificationFix = Claims.Threshold.amplificationFix
    public var specificityMaxChange = Claims.Threshold.specificityMaxChange
    public var specificityMaxChangeDirectional = Claims.Threshold.specificityMaxChangeDirectional
    public var significance = Claims.Threshold.significance

    public init() {}

    /// The specification's thresholds.
    public static let standard = ClaimThresholds()

    public var description: String {
        "anchorsRatio \(anchorsRatio), nonSelectiveSI \(nonSelectiveSI)/\(nonSelectiveSIDirectional), "
            + "nonSelectiveEquivalence \(nonSelectiveEquivalence)/\(nonSelectiveEquivalenceDirectional), "
            + "deepAgreement \(deepAgreement), shallowAgreementMax \(shallowAgreementMax), "
            + "blockingDrop \(blockingDrop), amplificationFix \(amplificationFix), "
            + "specificityMaxChange \(specificityMaxChange)/\(specificityMaxChangeDirectional), "
            + "significance \(significance)"
    }
}
