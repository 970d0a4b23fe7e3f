"""Slow, obviously-correct loop implementations of every loss: the references the fast paths answer to."""

from __future__ import annotations

import math

import numpy as np


def dist(a: np.ndarray, b: np.ndarray) -> float:
    return math.sqrt(sum((float(u) - float(v)) ** 2 for u, v in zip(a, b)))


def cos(a: np.ndarray, b: np.ndarray) -> float:
    na = math.sqrt(sum(float(u) ** 2 for u in a))
    nb = math.sqrt(sum(float(v) ** 2 for v in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(float(u) * float(v) for u, v in zip(a, b)) / (na * nb)


def contrastive_pairs(x, pairs, margin=1.0, form="squared"):
    out = []
    for i, j, y in pairs:
        d = dist(x[i], x[j])
        h = max(margin - d, 0.0)
        if form == "squared":
            out.append(d * d if y else h * h)
        elif form == "halved":
            out.append(0.5 * d * d if y else 0.5 * h * h)
        else:
            out.append(0.5 * d * d if y else h)
    return out


def label_pairs(labels):
    n = len(labels)
    return [(i, j, int(labels[i] == labels[j])) for i in range(n) for j in range(i + 1, n)]


def label_triplets(labels):
    n = len(labels)
    return [(a, p, q) for a in range(n) for p in range(n) for q in range(n)
            if p != a and labels[p] == labels[a] and labels[q] != labels[a]]


def triplet(x, triplets, margin=1.0, squared=True):
    out = []
    for a, p, n in triplets:
        dp, dn = dist(x[a], x[p]), dist(x[a], x[n])
        if squared:
            dp, dn = dp * dp, dn * dn
        out.append(max(dp - dn + margin, 0.0))
    return out


def npair(x, anchors, positives, l2_reg=0.0):
    out = []
    for i in range(len(anchors)):
        f = x[anchors[i]]
        s = [sum(float(u) * float(v) for u, v in zip(f, x[positives[j]])) for j in range(len(anchors))]
        inner = sum(math.exp(s[j] - s[i]) for j in range(len(anchors)) if j != i)
        reg = l2_reg * (sum(float(u) ** 2 for u in f) + sum(float(v) ** 2 for v in x[positives[i]]))
        out.append(math.log(1 + inner) + reg)
    return out


def infonce(x, labels, temperature):
    n = len(labels)
    out = []
    for a in range(n):
        negatives = [math.exp(cos(x[a], x[k]) / temperature) for k in range(n) if labels[k] != labels[a]]
        for p in range(n):
            if p == a or labels[p] != labels[a]:
                continue
            num = math.exp(cos(x[a], x[p]) / temperature)
            out.append(-math.log(num / (num + sum(negatives))))
    return out


def supcon(x, labels, temperature):
    n = len(labels)
    out = []
    for i in range(n):
        positives = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denominator = sum(math.exp(cos(x[i], x[a]) / temperature) for a in range(n) if a != i)
        terms = [math.log(math.exp(cos(x[i], x[p]) / temperature) / denominator) for p in positives]
        out.append(-sum(terms) / len(positives))
    return out


def bce(x, pairs, scale=10.0, bias=-10.0):
    out = []
    for i, j, y in pairs:
        z = scale * cos(x[i], x[j]) + bias
        p = 1.0 / (1.0 + math.exp(-z))
        out.append(-math.log(p) if y else -math.log(1.0 - p))
    return out
