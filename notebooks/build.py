"""Writes the class notebook (clase6.ipynb, in Spanish) and its English twin from one source.

    python notebooks/build.py

Each cell below is given in both languages, so the twins walk the same path by construction;
tests/test_notebook.py checks that the committed notebooks are what this script writes.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).parent

# Every cell: (kind, Spanish, English). Code cells share their code; names and comments are
# in each notebook's language.
CELLS: list[tuple[str, str, str]] = []


def md(es: str, en: str) -> None:
    CELLS.append(("markdown", es.strip("\n"), en.strip("\n")))


def code(es: str, en: str) -> None:
    CELLS.append(("code", es.strip("\n"), en.strip("\n")))


md("""
# Clase 6 — de la primera red neuronal a una CNN que lee dígitos

Esta es la clase 6 de aprendizaje profundo, escrita en PyTorch tal como se ve en clase: la
primera red (`NuestraPrimeraRed`, 17 parámetros) y su entrenamiento paso a paso, los datos de
MNIST, la CNN de la clase (`NuestraSegundaRed`) con su bucle de entrenamiento y validación, la
evaluación, y al final la tarea: leer los dígitos que dibujan ustedes. Después se hace lo mismo
con **digitos**, el paquete que salió de esta clase, y se explica qué agrega.

**Cómo abrirla**: clonen el repositorio de digitos y abran este archivo en Jupyter
(`pip install jupyter`, luego `jupyter lab notebooks/clase6.ipynb`), en VS Code o en Google
Colab (allí, primero `!git clone` del repositorio y `%cd` a su carpeta `notebooks`). La
primera celda de código instala digitos desde el repositorio si todavía no está instalado.

Los datos: MNIST se lee de la carpeta `DIGITOS_DATA_DIR` si está definida; si no, digitos lo
descarga (y verifica) en `~/.cache/digitos`. Con `DIGITOS_NOTEBOOK_QUICK=1` las celdas pesadas
usan pocas imágenes y una sola época.
""", """
# Class 6 — from the first neural network to a CNN that reads digits

This is class 6 of deep learning, written in PyTorch as the class does it: the first network
(`NuestraPrimeraRed`, 17 parameters) and its training step by step, the MNIST data, the class's
CNN (`NuestraSegundaRed`) with its training and validation loop, the evaluation, and at the end
the homework: reading the digits you draw yourselves. Then the same is done with **digitos**,
the package that grew out of this class, and what it adds is explained.

**How to open it**: clone the digitos repository and open this file in Jupyter
(`pip install jupyter`, then `jupyter lab notebooks/clase6-en.ipynb`), in VS Code or in Google
Colab (there, first `!git clone` the repository and `%cd` into its `notebooks` folder). The
first code cell installs digitos from the repository when it is not installed yet.

The data: MNIST is read from the folder `DIGITOS_DATA_DIR` when it is set; otherwise digitos
downloads (and checks) it into `~/.cache/digitos`. With `DIGITOS_NOTEBOOK_QUICK=1` the heavy
cells use few images and a single epoch.
""")

code("""
# digitos, instalado desde el repositorio donde está este cuaderno (si todavía no lo está)
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("digitos") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".."], check=True)
""", """
# digitos, installed from the repository this notebook is in (when it is not installed yet)
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("digitos") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", ".."], check=True)
""")

code("""
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import digitos

RAPIDO = os.environ.get("DIGITOS_NOTEBOOK_QUICK") == "1"  # celdas pesadas en pequeño
DATOS = os.environ.get("DIGITOS_DATA_DIR")  # None: digitos descarga MNIST en su caché
SALIDA = Path(os.environ.get("DIGITOS_NOTEBOOK_OUT", "clase6-salida")).resolve()
SALIDA.mkdir(parents=True, exist_ok=True)  # figuras y modelos
print(f"La versión de PyTorch que tengo instalada es la {torch.__version__}.",
      "(modo rápido)" if RAPIDO else "")
""", """
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import digitos

QUICK = os.environ.get("DIGITOS_NOTEBOOK_QUICK") == "1"  # heavy cells made small
DATA = os.environ.get("DIGITOS_DATA_DIR")  # None: digitos downloads MNIST into its cache
OUT = Path(os.environ.get("DIGITOS_NOTEBOOK_OUT", "clase6-salida")).resolve()
OUT.mkdir(parents=True, exist_ok=True)  # figures and models
print(f"The PyTorch version I have installed is {torch.__version__}.", "(quick mode)" if QUICK else "")
""")

md("""
## Cuestionario

1) ¿Cómo escribir la matriz `((2,2),(2,2))` usando `np.ones` y el producto de un escalar por un
`nparray`? Multiplicando la matriz de unos por el escalar 2: el producto se aplica elemento a
elemento.
""", """
## Quiz

1) How do we write the matrix `((2,2),(2,2))` with `np.ones` and the product of a scalar and an
`nparray`? By multiplying the matrix of ones by the scalar 2: the product applies element by
element.
""")

code("2 * np.ones((2, 2))", "2 * np.ones((2, 2))")

md("""
2) ¿Qué error nos da `numpy` cuando queremos calcular la inversa de una matriz cuadrada no
invertible? `numpy.linalg.LinAlgError: Singular matrix`. Una matriz de unos de 3x3 tiene
determinante 0 (sus filas son iguales), así que no tiene inversa:
""", """
2) What error does `numpy` give when we ask for the inverse of a square matrix that has none?
`numpy.linalg.LinAlgError: Singular matrix`. A 3x3 matrix of ones has determinant 0 (its rows
are equal), so it has no inverse:
""")

code("""
from numpy.linalg import LinAlgError, inv

try:
    inv(np.ones((3, 3)))
except LinAlgError as error:
    print(f"{type(error).__module__}.{type(error).__name__}: {error}")
""", """
from numpy.linalg import LinAlgError, inv

try:
    inv(np.ones((3, 3)))
except LinAlgError as error:
    print(f"{type(error).__module__}.{type(error).__name__}: {error}")
""")

md("""
## La primera red: `NuestraPrimeraRed`

Dos neuronas de entrada, una capa oculta de tres neuronas con activación sigmoide y dos neuronas
de salida. Una red en PyTorch es una clase que hereda de `nn.Module`: en `__init__` se crean
sus capas (cada `nn.Linear` guarda sus pesos y su sesgo) y `forward` dice cómo pasa un dato por
ellas. **Pregunta**: *¿cuántos parámetros ajustables tiene?* Cada neurona oculta tiene 2 pesos
y un sesgo (3 × 3 = 9); cada neurona de salida, 3 pesos y un sesgo (2 × 4 = 8): 17.
""", """
## The first network: `NuestraPrimeraRed`

Two input neurons, a hidden layer of three neurons with a sigmoid activation, and two output
neurons. A network in PyTorch is a class that inherits from `nn.Module`: `__init__` creates its
layers (each `nn.Linear` holds its weights and its bias) and `forward` says how an input goes
through them. **Question**: *how many adjustable parameters does it have?* Each hidden neuron
has 2 weights and a bias (3 × 3 = 9); each output neuron, 3 weights and a bias (2 × 4 = 8): 17.
""")

code("""
class NuestraPrimeraRed(nn.Module):
    def __init__(self):
        super().__init__()
        self.capa12 = nn.Linear(2, 3)  # de la capa 1 (entrada) a la 2 (oculta)
        self.capa23 = nn.Linear(3, 2)  # de la capa 2 a la 3 (salida)

    def forward(self, x):
        x = self.capa12(x)
        x = F.sigmoid(x)
        y = self.capa23(x)
        return y


red = NuestraPrimeraRed()
print(red)
for nombre, p in red.named_parameters():
    print(f"{nombre:14} {tuple(p.shape)} -> {p.numel()} parámetros")
print("total:", sum(p.numel() for p in red.parameters()))
""", """
class NuestraPrimeraRed(nn.Module):
    def __init__(self):
        super().__init__()
        self.capa12 = nn.Linear(2, 3)  # from layer 1 (input) to layer 2 (hidden)
        self.capa23 = nn.Linear(3, 2)  # from layer 2 to layer 3 (output)

    def forward(self, x):
        x = self.capa12(x)
        x = F.sigmoid(x)
        y = self.capa23(x)
        return y


net = NuestraPrimeraRed()
print(net)
for name, p in net.named_parameters():
    print(f"{name:14} {tuple(p.shape)} -> {p.numel()} parameters")
print("total:", sum(p.numel() for p in net.parameters()))
""")

md("""
### Entrenarla: qué quiere decir que una red "aprende sus pesos"

Le damos puntos del plano: dos medias lunas entrelazadas, una por clase. Ninguna recta separa
las dos clases: la capa oculta, con su activación no lineal, es la que permite doblar la
frontera. Entrenar es repetir cuatro pasos: pasar los datos por la red (`forward`), medir el
error con una función de pérdida (la entropía cruzada), calcular con `backward()` cuánto cambia
ese error con cada peso (el gradiente), y mover cada peso un poco en contra de su gradiente
(`optimizer.step()`, aquí con Adam).
""", """
### Training it: what it means that a network "learns its weights"

We give it points of the plane: two interleaved half moons, one per class. No straight line
separates the two classes: the hidden layer, with its non-linear activation, is what lets the
boundary bend. Training repeats four steps: pass the data through the network (`forward`),
measure the error with a loss function (cross-entropy), compute with `backward()` how that error
changes with each weight (the gradient), and move each weight a little against its gradient
(`optimizer.step()`, here with Adam).
""")

code("""
from digitos.toy import two_moons

torch.manual_seed(0)  # los pesos al azar del comienzo, los mismos en cada ejecución
x, y = two_moons(400, seed=0)  # 400 puntos (x: sus dos coordenadas) y su clase (y: 0 o 1)
red = NuestraPrimeraRed()
optimizador = torch.optim.Adam(red.parameters(), lr=0.05)
perdidas = []
for paso in range(1500):
    salida = red(x)  # forward: dos números por punto
    perdida = F.cross_entropy(salida, y)  # cuánto se equivoca
    optimizador.zero_grad()  # borrar los gradientes del paso anterior
    perdida.backward()  # el gradiente de la pérdida respecto de cada peso
    optimizador.step()  # mover los pesos
    perdidas.append(perdida.item())

exactitud = (red(x).argmax(1) == y).float().mean().item()
print(f"pérdida: {perdidas[0]:.4f} en el primer paso, {perdidas[-1]:.4f} en el último")
print(f"después de entrenar: {100 * exactitud:.1f}% de los puntos bien clasificados")

figura, (izq, der) = plt.subplots(1, 2, figsize=(10, 4))
xs, ys = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-1, 1.5, 200))
with torch.no_grad():
    malla = torch.tensor(np.c_[xs.ravel(), ys.ravel()], dtype=torch.float32)
    p = F.softmax(red(malla), dim=1)[:, 1].reshape(xs.shape)
izq.contourf(xs, ys, p, levels=20, cmap="RdBu_r", alpha=0.6)
izq.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.2)
izq.set_title("la frontera que aprendió")
der.plot(perdidas)
der.set_xlabel("paso")
der.set_ylabel("pérdida")
figura.savefig(SALIDA / "primera_red.png")
plt.show()
""", """
from digitos.toy import two_moons

torch.manual_seed(0)  # the random starting weights, the same at every run
x, y = two_moons(400, seed=0)  # 400 points (x: their two coordinates) and their class (y: 0 or 1)
net = NuestraPrimeraRed()
optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
losses = []
for step in range(1500):
    output = net(x)  # forward: two numbers per point
    loss = F.cross_entropy(output, y)  # how wrong it is
    optimizer.zero_grad()  # clear the gradients of the step before
    loss.backward()  # the gradient of the loss with respect to each weight
    optimizer.step()  # move the weights
    losses.append(loss.item())

accuracy = (net(x).argmax(1) == y).float().mean().item()
print(f"loss: {losses[0]:.4f} at the first step, {losses[-1]:.4f} at the last")
print(f"after training: {100 * accuracy:.1f}% of the points classified right")

figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
xs, ys = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-1, 1.5, 200))
with torch.no_grad():
    grid = torch.tensor(np.c_[xs.ravel(), ys.ravel()], dtype=torch.float32)
    p = F.softmax(net(grid), dim=1)[:, 1].reshape(xs.shape)
left.contourf(xs, ys, p, levels=20, cmap="RdBu_r", alpha=0.6)
left.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.2)
left.set_title("the boundary it learned")
right.plot(losses)
right.set_xlabel("step")
right.set_ylabel("loss")
figure.savefig(OUT / "first_network.png")
plt.show()
""")

md("""
Prueben con `digitos.toy.xor_points(400)` (cuatro nubes en las esquinas de un cuadrado; las
esquinas opuestas son de la misma clase) en lugar de `two_moons`, y con otras semillas en
`torch.manual_seed`: tres neuronas ocultas alcanzan, pero a veces el descenso por gradiente
se queda en un mínimo local. El punto de partida importa.

## Datos: MNIST

MNIST tiene 70.000 imágenes de dígitos escritos a mano, de 28x28 píxeles: 60.000 para entrenar
y 10.000 de prueba. `digitos.load_dataset` lee los cuatro archivos IDX originales (verificando
su hash) y guarda cada conjunto entero como un solo tensor de `uint8`.
""", """
Try `digitos.toy.xor_points(400)` (four clouds at the corners of a square; opposite corners are
of the same class) instead of `two_moons`, and other seeds in `torch.manual_seed`: three hidden
neurons are enough, but gradient descent sometimes stops in a local minimum. Where it starts
matters.

## Data: MNIST

MNIST holds 70,000 images of handwritten digits, 28x28 pixels: 60,000 to train on and 10,000 to
test. `digitos.load_dataset` reads the four original IDX files (checking their hashes) and keeps
each set whole as a single `uint8` tensor.
""")

code("""
datos = digitos.load_dataset("mnist", DATOS)
print("clases:", datos.classes)
print("imágenes:", tuple(datos.train.images.shape), "| etiquetas:", tuple(datos.train.labels.shape))

figura, ejes = plt.subplots(1, 15, figsize=(15, 1.6))
for eje, imagen, etiqueta in zip(ejes, datos.train.images, datos.train.labels):
    eje.imshow(imagen, cmap="gray")
    eje.set_title(int(etiqueta))
    eje.axis("off")
figura.savefig(SALIDA / "primeras15.png")
plt.show()
""", """
data = digitos.load_dataset("mnist", DATA)
print("classes:", data.classes)
print("images:", tuple(data.train.images.shape), "| labels:", tuple(data.train.labels.shape))

figure, axes = plt.subplots(1, 15, figsize=(15, 1.6))
for axis, image, label in zip(axes, data.train.images, data.train.labels):
    axis.imshow(image, cmap="gray")
    axis.set_title(int(label))
    axis.axis("off")
figure.savefig(OUT / "first15.png")
plt.show()
""")

md("""
## La CNN de la clase: `NuestraSegundaRed`

Dos convoluciones, *max-pooling*, *dropout* y dos capas lineales: 1.199.882 parámetros. Las
imágenes pasan a números entre 0 y 1 (`ToTensor()` en la clase); de las de entrenamiento se
separan 5.000 para validar. En cada época se recorre el conjunto de entrenamiento en lotes de
64 (los cuatro pasos de antes), y después se mide la pérdida y la exactitud en validación; se
guarda el modelo de la época con menor pérdida de validación.
""", """
## The class's CNN: `NuestraSegundaRed`

Two convolutions, max-pooling, dropout and two linear layers: 1,199,882 parameters. The images
become numbers between 0 and 1 (`ToTensor()` in the class); 5,000 of the training images are
set apart to validate on. Each epoch goes through the training set in batches of 64 (the four
steps from before), then measures loss and accuracy on validation; the model of the epoch with
the lowest validation loss is kept.
""")

code("""
class NuestraSegundaRed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)  # 64 canales x 12 x 12
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


print("parámetros:", sum(p.numel() for p in NuestraSegundaRed().parameters()))
""", """
class NuestraSegundaRed(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)  # 64 channels x 12 x 12
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


print("parameters:", sum(p.numel() for p in NuestraSegundaRed().parameters()))
""")

code("""
from torch.utils.data import DataLoader, TensorDataset

def como_tensores(imagenes, etiquetas):
    # uint8 (N, 28, 28) -> float (N, 1, 28, 28) entre 0 y 1, como ToTensor()
    return TensorDataset(imagenes.float().unsqueeze(1) / 255, etiquetas)

n_entrenamiento = 3000 if RAPIDO else 55000
entrenamiento = como_tensores(datos.train.images[:n_entrenamiento], datos.train.labels[:n_entrenamiento])
validacion = como_tensores(datos.train.images[55000:], datos.train.labels[55000:])
cargador = DataLoader(entrenamiento, batch_size=64, shuffle=True)
cargador_val = DataLoader(validacion, batch_size=1000)

torch.manual_seed(0)
modelo = NuestraSegundaRed()
optimizador = torch.optim.Adam(modelo.parameters(), lr=0.001)
historia = []
mejor = float("inf")
for epoca in range(1, (1 if RAPIDO else 5) + 1):
    modelo.train()  # dropout encendido
    total = 0.0
    for imagenes, etiquetas in cargador:
        perdida = F.nll_loss(modelo(imagenes), etiquetas)  # la red da log-probabilidades
        optimizador.zero_grad()
        perdida.backward()
        optimizador.step()
        total += perdida.item() * len(etiquetas)
    modelo.eval()  # dropout apagado para medir
    perdida_val, aciertos = 0.0, 0
    with torch.no_grad():
        for imagenes, etiquetas in cargador_val:
            salida = modelo(imagenes)
            perdida_val += F.nll_loss(salida, etiquetas, reduction="sum").item()
            aciertos += (salida.argmax(1) == etiquetas).sum().item()
    historia.append((total / len(entrenamiento), perdida_val / len(validacion),
                     aciertos / len(validacion)))
    print(f"época {epoca}: pérdida de entrenamiento {historia[-1][0]:.4f}, "
          f"de validación {historia[-1][1]:.4f}, exactitud {100 * historia[-1][2]:.2f}%")
    if historia[-1][1] < mejor:  # el mejor modelo hasta ahora: se guarda
        mejor = historia[-1][1]
        torch.save(modelo.state_dict(), SALIDA / "mejor_modelo.pt")
""", """
from torch.utils.data import DataLoader, TensorDataset

def as_tensors(images, labels):
    # uint8 (N, 28, 28) -> float (N, 1, 28, 28) between 0 and 1, as ToTensor()
    return TensorDataset(images.float().unsqueeze(1) / 255, labels)

n_train = 3000 if QUICK else 55000
training = as_tensors(data.train.images[:n_train], data.train.labels[:n_train])
validation = as_tensors(data.train.images[55000:], data.train.labels[55000:])
loader = DataLoader(training, batch_size=64, shuffle=True)
val_loader = DataLoader(validation, batch_size=1000)

torch.manual_seed(0)
model = NuestraSegundaRed()
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
history = []
best = float("inf")
for epoch in range(1, (1 if QUICK else 5) + 1):
    model.train()  # dropout on
    total = 0.0
    for images, labels in loader:
        loss = F.nll_loss(model(images), labels)  # the network gives log-probabilities
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(labels)
    model.eval()  # dropout off to measure
    val_loss, right = 0.0, 0
    with torch.no_grad():
        for images, labels in val_loader:
            output = model(images)
            val_loss += F.nll_loss(output, labels, reduction="sum").item()
            right += (output.argmax(1) == labels).sum().item()
    history.append((total / len(training), val_loss / len(validation), right / len(validation)))
    print(f"epoch {epoch}: training loss {history[-1][0]:.4f}, "
          f"validation loss {history[-1][1]:.4f}, accuracy {100 * history[-1][2]:.2f}%")
    if history[-1][1] < best:  # the best model so far: kept
        best = history[-1][1]
        torch.save(model.state_dict(), OUT / "best_model.pt")
""")

md("""
Las curvas de pérdida, con las épocas en el eje x: si la de validación sube mientras la de
entrenamiento baja, la red empieza a memorizar (sobreajuste).
""", """
The loss curves, epochs on the x axis: when validation rises while training falls, the
network has begun to memorise (overfitting).
""")

code("""
epocas = range(1, len(historia) + 1)
plt.plot(epocas, [h[0] for h in historia], "o-", label="entrenamiento")
plt.plot(epocas, [h[1] for h in historia], "o-", label="validación")
plt.xlabel("época")
plt.ylabel("pérdida")
plt.legend()
plt.savefig(SALIDA / "perdidas.png")
plt.show()
""", """
epochs = range(1, len(history) + 1)
plt.plot(epochs, [h[0] for h in history], "o-", label="training")
plt.plot(epochs, [h[1] for h in history], "o-", label="validation")
plt.xlabel("epoch")
plt.ylabel("loss")
plt.legend()
plt.savefig(OUT / "losses.png")
plt.show()
""")

md("""
## Evaluación

El mejor modelo sobre las 10.000 imágenes de prueba, que no vio nunca: la exactitud, la matriz
de confusión (filas: el dígito verdadero; columnas: lo que leyó la red) y algunos dígitos que
leyó mal.
""", """
## Evaluation

The best model on the 10,000 test images, which it never saw: the accuracy, the confusion
matrix (rows: the true digit; columns: what the network read) and some digits it read wrong.
""")

code("""
modelo.load_state_dict(torch.load(SALIDA / "mejor_modelo.pt"))
modelo.eval()
prueba = datos.test.images[:500] if RAPIDO else datos.test.images
verdad = datos.test.labels[: len(prueba)]
with torch.no_grad():
    leido = modelo(prueba.float().unsqueeze(1) / 255).argmax(1)
print(f"exactitud en prueba: {100 * (leido == verdad).float().mean():.2f}% de {len(prueba)} imágenes")
confusion = torch.bincount(10 * verdad + leido, minlength=100).reshape(10, 10)
print(confusion)

mal = torch.nonzero(leido != verdad).flatten()[:10]
figura, ejes = plt.subplots(1, max(len(mal), 1), figsize=(1.5 * max(len(mal), 1), 1.8), squeeze=False)
for eje, i in zip(ejes[0], mal):
    eje.imshow(prueba[i], cmap="gray")
    eje.set_title(f"{int(verdad[i])}→{int(leido[i])}")
    eje.axis("off")
figura.savefig(SALIDA / "mal_leidos.png")
plt.show()
""", """
model.load_state_dict(torch.load(OUT / "best_model.pt"))
model.eval()
test = data.test.images[:500] if QUICK else data.test.images
truth = data.test.labels[: len(test)]
with torch.no_grad():
    read = model(test.float().unsqueeze(1) / 255).argmax(1)
print(f"test accuracy: {100 * (read == truth).float().mean():.2f}% of {len(test)} images")
confusion = torch.bincount(10 * truth + read, minlength=100).reshape(10, 10)
print(confusion)

wrong = torch.nonzero(read != truth).flatten()[:10]
figure, axes = plt.subplots(1, max(len(wrong), 1), figsize=(1.5 * max(len(wrong), 1), 1.8), squeeze=False)
for axis, i in zip(axes[0], wrong):
    axis.imshow(test[i], cmap="gray")
    axis.set_title(f"{int(truth[i])}→{int(read[i])}")
    axis.axis("off")
figure.savefig(OUT / "misread.png")
plt.show()
""")

md("""
## Lo mismo, con digitos

Todo lo anterior es lo que hace `digitos.fit`, con lo que un proyecto real necesita además: la
configuración y las métricas de cada época guardadas en una carpeta de corrida, los puntos de
control escritos de forma atómica (un corte de luz no deja un archivo a medias), la corrida que
se puede retomar donde quedó (`digitos train --resume`), las curvas dibujadas solas, el mismo
código en CPU, en una GPU o en varias. La receta `class` es exactamente la de arriba (Adam, tasa
0,001, lotes de 64, 5 épocas); el modelo es la misma `NuestraSegundaRed`, y sus pesos se leen
con la clase escrita arriba:
""", """
## The same, with digitos

Everything above is what `digitos.fit` does, with what a real project needs besides: the
configuration and each epoch's metrics kept in a run folder, checkpoints written atomically (a
power cut leaves no half-written file), a run that can continue where it stopped
(`digitos train --resume`), the curves drawn by themselves, the same code on a CPU, one GPU or
many. The `class` recipe is exactly the one above (Adam, rate 0.001, batches of 64, 5 epochs);
the model is the same `NuestraSegundaRed`, and its weights load into the class written above:
""")

code("""
cfg = digitos.TrainConfig.from_recipe(
    "class", data_dir=DATOS, out=str(SALIDA / "clase"), overwrite=True, progress=False,
    epochs=1 if RAPIDO else None, limit_train=3000 if RAPIDO else None,
    limit_val=1000 if RAPIDO else None)
corrida = digitos.fit(cfg)
print("carpeta de la corrida:", corrida, sorted(p.name for p in corrida.iterdir()))

red_de_digitos, punto_de_control = digitos.load_checkpoint(corrida / "best.pt")
nuestra = NuestraSegundaRed()
nuestra.load_state_dict(red_de_digitos.state_dict())  # las mismas capas, los mismos nombres
print("los pesos de digitos en nuestra clase:", sum(p.numel() for p in nuestra.parameters()), "parámetros")
""", """
cfg = digitos.TrainConfig.from_recipe(
    "class", data_dir=DATA, out=str(OUT / "class"), overwrite=True, progress=False,
    epochs=1 if QUICK else None, limit_train=3000 if QUICK else None,
    limit_val=1000 if QUICK else None)
run = digitos.fit(cfg)
print("run folder:", run, sorted(p.name for p in run.iterdir()))

digitos_net, checkpoint = digitos.load_checkpoint(run / "best.pt")
ours = NuestraSegundaRed()
ours.load_state_dict(digitos_net.state_dict())  # the same layers, the same names
print("digitos' weights in our class:", sum(p.numel() for p in ours.parameters()), "parameters")
""")

md("""
Y desde una terminal, lo mismo en una línea, con la evaluación completa (exactitud por clase,
matriz de confusión, dígitos mal leídos como imagen):
`digitos train --recipe class` y `digitos evaluate CARPETA-DE-LA-CORRIDA`.

## La tarea: leer sus propios dibujos

Dibujen dígitos en Paint, GIMP o en el teléfono y guárdenlos en una carpeta (`mis_dibujos/`), del
tamaño que sea. Un dibujo no es como MNIST (fondo blanco, trazo fino, descentrado): digitos
encuentra la tinta, la separa del papel, la escala a 20 píxeles y la centra en 28x28 como MNIST
antes de que la red la vea, y lee también números enteros. Si la carpeta no existe, la celda de
abajo dibuja unos de ejemplo.
""", """
And from a terminal, the same in one line, with the full evaluation (per-class accuracy,
confusion matrix, misread digits as a picture): `digitos train --recipe class` and
`digitos evaluate RUN-FOLDER`.

## The homework: reading your own drawings

Draw digits in Paint, GIMP or on a phone and save them in a folder (`my_drawings/`), at any
size. A drawing is not like MNIST (white paper, thin pen, off-centre): digitos finds the ink,
tells it from the paper, scales it to 20 pixels and centres it in 28x28 as MNIST does before
the network sees it, and reads whole numbers too. When the folder is missing, the cell below
draws a few examples.
""")

code("""
from PIL import Image

MIS_DIBUJOS = Path("mis_dibujos")
if not MIS_DIBUJOS.is_dir():  # unos dibujos de ejemplo: dígitos de prueba en un lienzo blanco
    MIS_DIBUJOS = SALIDA / "dibujos_de_ejemplo"
    MIS_DIBUJOS.mkdir(exist_ok=True)
    for i in range(6):
        tinta = Image.fromarray(datos.test.images[i].numpy()).resize((200, 200))
        lienzo = Image.new("L", (400, 300), 255)
        lienzo.paste(0, (60 + 20 * i, 50), tinta)  # tinta negra donde el dígito es claro
        lienzo.save(MIS_DIBUJOS / f"dibujo{i}.png")

lector = digitos.load_reader(corrida / "best.pt")  # la red que entrenamos arriba
for archivo in sorted(MIS_DIBUJOS.glob("*.png")):
    resultado = digitos.read_image(lector, archivo)
    print(f"{archivo.name}: leí {resultado.number or 'nada'}",
          [f"{d.reading.digit} ({100 * d.reading.confidence:.0f}%)" for d in resultado.digits])
""", """
from PIL import Image

MY_DRAWINGS = Path("my_drawings")
if not MY_DRAWINGS.is_dir():  # example drawings: test digits on a white canvas
    MY_DRAWINGS = OUT / "example_drawings"
    MY_DRAWINGS.mkdir(exist_ok=True)
    for i in range(6):
        ink = Image.fromarray(data.test.images[i].numpy()).resize((200, 200))
        canvas = Image.new("L", (400, 300), 255)
        canvas.paste(0, (60 + 20 * i, 50), ink)  # black ink where the digit is light
        canvas.save(MY_DRAWINGS / f"drawing{i}.png")

reader = digitos.load_reader(run / "best.pt")  # the network we trained above
for file in sorted(MY_DRAWINGS.glob("*.png")):
    result = digitos.read_image(reader, file)
    print(f"{file.name}: read {result.number or 'nothing'}",
          [f"{d.reading.digit} ({100 * d.reading.confidence:.0f}%)" for d in result.digits])
""")

code("""
print("La página para dibujar, en una terminal:")
print(f"    digitos serve --checkpoint {corrida / 'best.pt'}")
print("y abrir http://127.0.0.1:8000/ : se dibuja con el ratón o con el dedo y la lectura cambia")
print("mientras dibujan. Sin --checkpoint usa el modelo que trae digitos, que además dice")
print("'no es un dígito' y lee números enteros.")
""", """
print("The drawing page, in a terminal:")
print(f"    digitos serve --checkpoint {run / 'best.pt'}")
print("and open http://127.0.0.1:8000/ : draw with the mouse or a finger and the reading changes")
print("as you draw. Without --checkpoint it uses the model shipped with digitos, which also says")
print("'not a digit' and reads whole numbers.")
""")

md("""
## Qué probar después

Las recetas de digitos, medidas en una CPU de 2 núcleos (ver el manual):

| receta | qué es | exactitud en prueba | tiempo |
| --- | --- | --- | --- |
| `class` | la de esta clase (`NuestraSegundaRed`, Adam) | 98,91% | ~7 min |
| `fast` | `DigitNet`, una época | 99,19% | 12,5 s |
| `default` | `DigitNet`, SGD con momento, aumentación, 10 épocas, "no es un dígito" | 99,47% | ~1 min |
| `best` | `DigitNetL`, 20 épocas, aumentación en la prueba | 99,69% (media de 3 semillas) | ~10 min |

Desde la terminal: `digitos train --recipe default`. Y para que el modelo aprenda su letra:
`digitos serve --collect`, corregir algunos dibujos en la página, y `digitos finetune`.
""", """
## What to try next

digitos' recipes, measured on a 2-core CPU (see the manual):

| recipe | what | test accuracy | time |
| --- | --- | --- | --- |
| `class` | this class's (`NuestraSegundaRed`, Adam) | 98.91% | ~7 min |
| `fast` | `DigitNet`, one epoch | 99.19% | 12.5 s |
| `default` | `DigitNet`, SGD with momentum, augmentation, 10 epochs, "not a digit" | 99.47% | ~1 min |
| `best` | `DigitNetL`, 20 epochs, test-time augmentation | 99.69% (mean of 3 seeds) | ~10 min |

From a terminal: `digitos train --recipe default`. And to have the model learn your
handwriting: `digitos serve --collect`, correct a few drawings on the page, then
`digitos finetune`.
""")


def notebook(lang: int) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    for i, (kind, *text) in enumerate(CELLS):
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        nb.cells.append(make(text[lang], id=f"cell-{i}"))  # ids that stay put between builds
    return nb


NOTEBOOKS = {"clase6.ipynb": 0, "clase6-en.ipynb": 1}


def written() -> dict[str, str]:
    """Each notebook's text as this script writes it."""
    return {name: nbformat.writes(notebook(lang), version=4) + "\n"
            for name, lang in NOTEBOOKS.items()}


if __name__ == "__main__":
    for name, text in written().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
