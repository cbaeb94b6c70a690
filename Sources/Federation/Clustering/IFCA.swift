/// IFCA (Ghosh et al. 2020) assignment: each device evaluates every cluster model on its data and joins the one with
/// the lowest loss. Non-finite losses never win; ties go to the lower cluster index.
public func ifcaAssign(losses: [Float]) -> Int? {
    var best: Int? = nil
    var bestLoss = Float.infinity
    for (c, l) in losses.enumerated() where l.isFinite && (best == nil || l < bestLoss) {
        best = c; bestLoss = l
    }
    return best
}

/// Assignments for many devices: `losses[device][cluster]`.
public func ifcaAssign(lossMatrix: [[Float]]) -> [Int?] { lossMatrix.map { ifcaAssign(losses: $0) } }
